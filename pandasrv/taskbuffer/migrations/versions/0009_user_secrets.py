"""User secrets (creds/*): one encrypted row per owner, changed by compare-and-swap on ``version``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pandasrv.taskbuffer.schema import DATETIME, MARIADB_TABLE_OPTIONS, TEXT, column

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_secrets",
        column("owner", sa.String(250), primary_key=True),
        column("data", TEXT, nullable=False),
        column("version", sa.BigInteger(), nullable=False),
        column("updated_at", DATETIME, nullable=False),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("user_secrets")
