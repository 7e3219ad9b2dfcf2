"""job_status_log.reason: why the server moved a job on its own (a claim never confirmed, a reply not delivered).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job_status_log", sa.Column("reason", sa.String(256), quote=False))


def downgrade() -> None:
    op.drop_column("job_status_log", "reason")
