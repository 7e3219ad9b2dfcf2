"""Indexes for the set-based sweeps: Watcher timeouts, retention, output-report locking.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_jobs_active_status_mtime", "jobs_active", ["jobStatus", "modificationTime"]),
    ("ix_jobs_defined_status_mtime", "jobs_defined", ["jobStatus", "modificationTime"]),
    ("ix_jobs_archived_mtime", "jobs_archived", ["modificationTime"]),
    ("ix_job_output_report_lock", "job_output_report", ["lockedBy", "timeStamp"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        # Text expressions: Alembic would quote plain column names, and ours must stay unquoted.
        op.create_index(name, table, [sa.text(column) for column in columns], quote=False)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table, quote=False)
