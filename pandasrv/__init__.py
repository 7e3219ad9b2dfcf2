"""pandasrv: a Python implementation of the PanDA server."""

__version__ = "0.1.0"
