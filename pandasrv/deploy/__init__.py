"""Production front ends: ``pandasrv apache`` (Apache httpd + mod_wsgi) and its helpers (docs/deploy.md)."""
