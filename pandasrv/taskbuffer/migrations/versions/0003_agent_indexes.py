"""Indexes for the daemon agents: dataset look-ups of the Closer and Activator, retention's age cut-offs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_files_destination_dblock", "files", ["destinationDBlock"]),
    ("ix_files_dispatch_dblock", "files", ["dispatchDBlock"]),
    ("ix_files_prod_dblock", "files", ["prodDBlock"]),
    ("ix_job_status_log_mtime", "job_status_log", ["modificationTime"]),
    ("ix_pilot_log_time", "pilot_log", ["timeStamp"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        # Text expressions: Alembic would quote plain column names, and ours must stay unquoted.
        op.create_index(name, table, [sa.text(column) for column in columns], quote=False)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table, quote=False)
