"""The read-only monitor under ``/monitor/``: server-rendered pages (Jinja2, autoescaped) and their
``?format=json`` forms. ``pages`` builds each page's data from the TaskBuffer; ``resource`` checks access,
parses the query and renders. Nothing here writes to the database."""
