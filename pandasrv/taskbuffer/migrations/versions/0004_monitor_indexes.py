"""The monitor: indexes for filtered, newest-first job lists over the archive (keyset pages on PandaID),
and daemon_runs, the last run of each daemon script on each machine.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from pandasrv.taskbuffer.schema import DATETIME, MARIADB_TABLE_OPTIONS

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_jobs_archived_monitor_status", "jobs_archived", ["jobStatus", "PandaID"]),
    ("ix_jobs_archived_monitor_site", "jobs_archived", ["computingSite", "PandaID"]),
    ("ix_jobs_archived_monitor_user", "jobs_archived", ["prodUserName", "PandaID"]),
)


def col(name: str, type_: sa.types.TypeEngine[Any], **kwargs: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, quote=False, **kwargs)


def upgrade() -> None:
    op.create_table(
        "daemon_runs",
        col("script", sa.String(64), primary_key=True),
        col("host", sa.String(128), primary_key=True),
        col("startTime", DATETIME),
        col("endTime", DATETIME),
        col("result", sa.String(16)),
        col("message", sa.String(500)),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )
    for name, table, columns in INDEXES:
        # Text expressions: Alembic would quote plain column names, and ours must stay unquoted.
        op.create_index(name, table, [sa.text(column) for column in columns], quote=False)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table, quote=False)
    op.drop_table("daemon_runs")
