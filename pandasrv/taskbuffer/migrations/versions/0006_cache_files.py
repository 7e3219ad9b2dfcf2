"""The upload cache in the database: cache_files (one row per name, with its owner) and cache_chunks.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from pandasrv.taskbuffer.schema import BLOB, DATETIME, MARIADB_TABLE_OPTIONS

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def col(name: str, type_: sa.types.TypeEngine[Any], **kwargs: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, quote=False, **kwargs)


def upgrade() -> None:
    op.create_table(
        "cache_files",
        col("name", sa.String(255), primary_key=True),
        col("owner", sa.String(250), nullable=False),
        col("version", sa.BigInteger(), nullable=False),
        col("fileSize", sa.BigInteger(), nullable=False),
        col("nChunks", sa.Integer(), nullable=False),
        col("checksum", sa.String(32)),
        col("creationTime", DATETIME, nullable=False),
        col("modificationTime", DATETIME, nullable=False),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )
    op.create_table(
        "cache_chunks",
        col("name", sa.String(255), primary_key=True),
        col("version", sa.BigInteger(), primary_key=True, autoincrement=False),
        col("seq", sa.Integer(), primary_key=True, autoincrement=False),
        col("data", BLOB, nullable=False),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )
    op.create_index("ix_cache_files_mtime", "cache_files", [sa.text("modificationTime")], quote=False)


def downgrade() -> None:
    op.drop_index("ix_cache_files_mtime", table_name="cache_files")
    op.drop_table("cache_chunks")
    op.drop_table("cache_files")
