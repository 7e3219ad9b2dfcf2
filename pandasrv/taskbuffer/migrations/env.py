"""Alembic environment: migrations always run on a connection handed over by ``db_admin``.

``db_admin`` builds the Alembic configuration in code, so users need no ``alembic.ini``.
"""

from alembic import context

from pandasrv.taskbuffer.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
