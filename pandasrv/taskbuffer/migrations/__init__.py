"""Alembic migrations of the pandasrv schema (run through ``pandasrv.taskbuffer.db_admin``)."""
