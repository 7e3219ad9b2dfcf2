"""The monitor's jobs list sorted by modification time: (modificationTime, PandaID) on every stage table, so
a keyset page in that order is an index range scan, as the PandaID order is.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("jobs_defined", "jobs_active", "jobs_archived")


def upgrade() -> None:
    for table in TABLES:
        # Text expressions: Alembic would quote plain column names, and ours must stay unquoted.
        op.create_index(f"ix_{table}_mtime_id", table, [sa.text("modificationTime"), sa.text("PandaID")], quote=False)


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_mtime_id", table_name=table, quote=False)
