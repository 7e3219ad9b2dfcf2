"""The small pilot is tested against the same real server (gunicorn, one per backend) as the web layer."""

from tests.web.conftest import fresh_queue, server  # noqa: F401  (re-exported fixtures)
