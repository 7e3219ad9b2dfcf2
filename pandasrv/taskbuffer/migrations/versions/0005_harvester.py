"""Harvester, the pilot factory: its instances, workers, the job-worker relation, worker statistics, the
command queue, dialogs, service metrics and target slots; the Harvester command ID sequence; the standard
resource types (SCORE, MCORE, SCORE_HIMEM, MCORE_HIMEM) where missing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from pandasrv.taskbuffer.schema import DATETIME, MARIADB_TABLE_OPTIONS, TEXT, add_sequences, seed_resource_types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("harvester_instances", "harvester_workers", "harvester_rel_jobs_workers", "harvester_worker_stats",
          "harvester_commands", "harvester_dialogs", "harvester_metrics", "harvester_slots")
INDEXES = (
    ("ix_harvester_workers_last_update", "harvester_workers", ["lastUpdate"]),
    ("ix_harvester_workers_site_status", "harvester_workers", ["computingSite", "status"]),
    ("ix_harvester_rel_pandaid", "harvester_rel_jobs_workers", ["PandaID"]),
    ("ix_harvester_commands_queue", "harvester_commands", ["harvester_ID", "status", "creation_date"]),
    ("ix_harvester_dialogs_time", "harvester_dialogs", ["creationTime"]),
    ("ix_harvester_metrics_time", "harvester_metrics", ["creation_time"]),
)
SEQUENCE = "harvester_command_id_seq"


def col(name: str, type_: sa.types.TypeEngine[Any], **kwargs: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, quote=False, **kwargs)


def upgrade() -> None:
    op.create_table(
        "harvester_instances",
        col("harvester_ID", sa.String(50), primary_key=True),
        col("owner", sa.String(250)),
        col("hostName", sa.String(128)),
        col("lastUpdate", DATETIME),
        col("startTime", DATETIME),
        col("sw_version", sa.String(64)),
        col("commit_stamp", sa.String(64)),
        col("description", sa.String(250)),
        col("data", TEXT),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )
    op.create_table(
        "harvester_workers",
        col("harvesterID", sa.String(50), primary_key=True),
        col("workerID", sa.BigInteger(), primary_key=True, autoincrement=False),
        col("batchID", sa.String(80)),
        col("queueName", sa.String(80)),
        col("status", sa.String(80), nullable=False),
        col("computingSite", sa.String(128)),
        col("nCore", sa.BigInteger()),
        col("nodeID", sa.String(80)),
        col("submitTime", DATETIME),
        col("startTime", DATETIME),
        col("endTime", DATETIME),
        col("lastUpdate", DATETIME, nullable=False),
        col("stdOut", sa.String(250)),
        col("stdErr", sa.String(250)),
        col("batchLog", sa.String(250)),
        col("jdl", sa.String(250)),
        col("resourceType", sa.String(56)),
        col("nativeExitCode", sa.BigInteger()),
        col("nativeStatus", sa.String(80)),
        col("diagMessage", sa.String(500)),
        col("nJobs", sa.BigInteger()),
        col("computingElement", sa.String(128)),
        col("submissionHost", sa.String(128)),
        col("harvesterHost", sa.String(128)),
        col("errorCode", sa.BigInteger()),
        col("jobType", sa.String(32)),
        col("minRamCount", sa.BigInteger()),
        col("syncLevel", sa.BigInteger()),
        col("pilotStatus", sa.String(80)),
        col("pilotStartTime", DATETIME),
        col("pilotEndTime", DATETIME),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )
    op.create_table(
        "harvester_rel_jobs_workers",
        col("harvesterID", sa.String(50), primary_key=True),
        col("workerID", sa.BigInteger(), primary_key=True, autoincrement=False),
        col("PandaID", sa.BigInteger(), primary_key=True, autoincrement=False),
        col("lastUpdate", DATETIME),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )
    op.create_table(
        "harvester_worker_stats",
        col("harvester_ID", sa.String(50), primary_key=True),
        col("computingSite", sa.String(128), primary_key=True),
        col("jobType", sa.String(32), primary_key=True),
        col("resourceType", sa.String(56), primary_key=True),
        col("status", sa.String(80), primary_key=True),
        col("n_workers", sa.BigInteger()),
        col("lastUpdate", DATETIME),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )
    op.create_table(
        "harvester_commands",
        col("command_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        col("harvester_ID", sa.String(50), nullable=False),
        col("command", sa.String(64), nullable=False),
        col("params", TEXT),
        col("ack_requested", sa.BigInteger()),
        col("status", sa.String(16), nullable=False),
        col("creation_date", DATETIME),
        col("status_date", DATETIME),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )
    op.create_table(
        "harvester_dialogs",
        col("harvester_id", sa.String(50), primary_key=True),
        col("diagID", sa.BigInteger(), primary_key=True, autoincrement=False),
        col("moduleName", sa.String(100)),
        col("identifier", sa.String(100)),
        col("creationTime", DATETIME),
        col("messageLevel", sa.String(10)),
        col("diagMessage", TEXT),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )
    op.create_table(
        "harvester_metrics",
        col("harvester_ID", sa.String(50), primary_key=True),
        col("harvester_host", sa.String(128), primary_key=True),
        col("creation_time", DATETIME, primary_key=True),
        col("metrics", TEXT),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )
    op.create_table(
        "harvester_slots",
        col("pandaQueueName", sa.String(128), primary_key=True),
        col("gshare", sa.String(64), primary_key=True),
        col("resourceType", sa.String(56), primary_key=True),
        col("numSlots", sa.BigInteger()),
        col("modificationTime", DATETIME),
        col("expirationTime", DATETIME),
        quote=False,
        **MARIADB_TABLE_OPTIONS,
    )

    for name, table, columns in INDEXES:
        op.create_index(name, table, [sa.text(column) for column in columns], quote=False)
    add_sequences(op.get_bind(), (SEQUENCE,))
    seed_resource_types(op.get_bind())


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table, quote=False)
    for table in reversed(TABLES):
        op.drop_table(table)
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.execute(sa.text("DELETE FROM id_sequences WHERE name = :name"), {"name": SEQUENCE})
    else:
        bind.execute(sa.text(f"DROP SEQUENCE {SEQUENCE}"))
