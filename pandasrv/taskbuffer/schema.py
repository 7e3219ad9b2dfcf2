"""The database schema, declared once with SQLAlchemy Core; DDL for every backend is generated from it.

All identifiers are unquoted (``quote=False``) so that SQL written as ``PandaID`` or ``jobStatus``
finds the same column on every backend, whatever case the backend folds names to. The job tables are
generated from ``JOB_COLUMNS`` (the wire format's attribute list) and the files table from
``FILE_COLUMNS``. Column kinds map to types that keep values intact everywhere: microsecond datetimes
(MariaDB ``DATETIME(6)``), double-precision floats (MariaDB ``FLOAT`` is single)
and unbounded text (MariaDB ``LONGTEXT``).

Migrations (``migrations/versions/``) must produce exactly this schema; ``tests/taskbuffer/test_schema.py``
compares a migrated database with a fresh one.
"""

from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from pandasrv.taskbuffer.drivers import SEQUENCES
from pandasrv.taskbuffer.file_spec import FILE_COLUMNS
from pandasrv.taskbuffer.job_spec import JOB_COLUMNS, TABLE_ATTRIBUTES

MARIADB = ("mysql", "mariadb")
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *MARIADB)
FLOAT = sa.Float().with_variant(mysql.DOUBLE(), *MARIADB)
TEXT = sa.Text().with_variant(mysql.LONGTEXT(), *MARIADB)

# Binary collation: string comparisons are case-sensitive, as on the other backends.
MARIADB_TABLE_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
SEQUENCE_TABLE = "id_sequences"  # SQLite has no sequences: one counter row per sequence

metadata = sa.MetaData()


def column_type(kind: str, length: int = 0) -> sa.types.TypeEngine[Any]:
    """The column type of a JobSpec/FileSpec attribute kind."""
    if kind == "int":
        return sa.BigInteger()
    if kind == "float":
        return FLOAT
    if kind == "str":
        return sa.String(length)
    if kind == "text":
        return TEXT
    if kind == "datetime":
        return DATETIME
    raise ValueError(f"unknown column kind {kind!r}")


def column(name: str, type_: sa.types.TypeEngine[Any], **kwargs: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, quote=False, **kwargs)


def table(name: str, *items: sa.schema.SchemaItem) -> sa.Table:
    return sa.Table(name, metadata, *items, quote=False, **MARIADB_TABLE_OPTIONS)


def index(name: str, *expressions: sa.ColumnElement[Any] | sa.Column[Any]) -> sa.Index:
    return sa.Index(name, *expressions, quote=False)


def spec_columns(columns: Iterable[tuple[str, str, int]], primary_key: str) -> list[sa.Column[Any]]:
    return [
        column(name, column_type(kind, length), primary_key=name == primary_key, autoincrement=False)
        for name, kind, length in columns
    ]


_JOB_TABLE_COLUMNS = [spec for spec in JOB_COLUMNS if spec[0] in TABLE_ATTRIBUTES]


def _job_table(name: str) -> sa.Table:
    return table(name, *spec_columns(_JOB_TABLE_COLUMNS, "PandaID"))


jobs_defined = _job_table("jobs_defined")
jobs_active = _job_table("jobs_active")
jobs_archived = _job_table("jobs_archived")

files = table("files", *spec_columns(FILE_COLUMNS, "row_ID"))

job_params = table(
    "job_params",
    column("PandaID", sa.BigInteger(), primary_key=True, autoincrement=False),
    column("jobParameters", TEXT),
)
job_metadata = table(
    "job_metadata",
    column("PandaID", sa.BigInteger(), primary_key=True, autoincrement=False),
    column("metaData", TEXT),
)
job_output_report = table(
    "job_output_report",
    column("PandaID", sa.BigInteger(), primary_key=True, autoincrement=False),
    column("attemptNr", sa.BigInteger(), primary_key=True, autoincrement=False),
    column("prodSourceLabel", sa.String(20)),
    column("jobStatus", sa.String(15)),
    column("data", TEXT),
    column("timeStamp", DATETIME),
    column("lockedBy", sa.String(128)),
    column("lockedTime", DATETIME),
)
job_status_log = table(
    "job_status_log",
    column("PandaID", sa.BigInteger(), nullable=False),
    column("modificationTime", DATETIME, nullable=False),
    column("jobStatus", sa.String(15), nullable=False),
    column("prodSourceLabel", sa.String(20)),
    column("cloud", sa.String(50)),
    column("computingSite", sa.String(128)),
    column("modificationHost", sa.String(128)),
    # why the job moved where its status alone does not say (a claim given back, a pilot's final update)
    column("reason", sa.String(256)),
)
pilot_log = table(
    "pilot_log",
    column("PandaID", sa.BigInteger(), nullable=False),
    column("timeStamp", DATETIME, nullable=False),
    column("log", TEXT),
)
process_locks = table(
    "process_locks",
    column("component", sa.String(64), primary_key=True),
    column("lockedBy", sa.String(128)),
    column("lockedTime", DATETIME),
    column("expiresAt", DATETIME),
)
queues = table(
    "queues",
    column("name", sa.String(128), primary_key=True),
    column("site", sa.String(128)),
    column("status", sa.String(16)),
    column("data", TEXT),
    column("modificationTime", DATETIME),
)
resource_types = table(
    "resource_types",
    column("name", sa.String(56), primary_key=True),
    column("min_core", sa.BigInteger()),
    column("max_core", sa.BigInteger()),
    column("min_ram_per_core", sa.BigInteger()),
    column("max_ram_per_core", sa.BigInteger()),
)
config = table(
    "config",
    column("app", sa.String(64), primary_key=True),
    column("component", sa.String(64), primary_key=True),
    column("config_key", sa.String(64), primary_key=True),  # KEY is reserved in MariaDB
    column("vo", sa.String(32), primary_key=True),
    column("value", TEXT),
    column("type", sa.String(16)),
)
users = table(
    "users",
    column("name", sa.String(128), primary_key=True),
    column("dn", sa.String(250)),
    column("status", sa.String(16)),
    column("jobDefinitionID", sa.BigInteger()),
    column("jobsetID", sa.BigInteger()),
    column("modificationTime", DATETIME),
)
sandbox_files = table(
    "sandbox_files",
    column("fileName", sa.String(255), primary_key=True),
    column("fileSize", sa.BigInteger()),
    column("checksum", sa.String(110)),
    column("hostName", sa.String(128)),
    column("dn", sa.String(250)),
    column("creationTime", DATETIME),
)
# The upload cache (putFile, file_server/upload_cache_file, served at /cache/<name>): in the database so
# every node of a cluster serves what any node stored. One header row per name, the content in chunks
# (each well under MariaDB's max_allowed_packet) keyed by the upload's version, so a reader never mixes
# two uploads of one name.
BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), *MARIADB)
cache_files = table(
    "cache_files",
    column("name", sa.String(255), primary_key=True),
    column("owner", sa.String(250), nullable=False),
    column("version", sa.BigInteger(), nullable=False),
    column("fileSize", sa.BigInteger(), nullable=False),
    column("nChunks", sa.Integer(), nullable=False),
    column("checksum", sa.String(32)),
    column("creationTime", DATETIME, nullable=False),
    column("modificationTime", DATETIME, nullable=False),
)
cache_chunks = table(
    "cache_chunks",
    column("name", sa.String(255), primary_key=True),
    column("version", sa.BigInteger(), primary_key=True, autoincrement=False),
    column("seq", sa.Integer(), primary_key=True, autoincrement=False),
    column("data", BLOB, nullable=False),
)
# User secrets (creds/set_user_secrets): one row per owner, the owner's whole dictionary encrypted by
# logic/secrets.py (AES-GCM, the owner as associated data); ``version`` makes every change a compare-and-swap.
user_secrets = table(
    "user_secrets",
    column("owner", sa.String(250), primary_key=True),
    column("data", TEXT, nullable=False),
    column("version", sa.BigInteger(), nullable=False),
    column("updated_at", DATETIME, nullable=False),
)
site_data = table(
    "site_data",
    column("site", sa.String(128), primary_key=True),
    column("getJob", sa.BigInteger()),
    column("updateJob", sa.BigInteger()),
    column("nStart", sa.BigInteger()),
    column("lastStart", DATETIME),
    column("lastUpdate", DATETIME),
)
datasets = table(
    "datasets",
    column("name", sa.String(255), primary_key=True),
    column("type", sa.String(20)),
    column("status", sa.String(64)),
    column("creationTime", DATETIME),
    column("modificationTime", DATETIME),
)
# The last run of each daemon script on each machine (the monitor's daemon page).
daemon_runs = table(
    "daemon_runs",
    column("script", sa.String(64), primary_key=True),
    column("host", sa.String(128), primary_key=True),
    column("startTime", DATETIME),
    column("endTime", DATETIME),
    column("result", sa.String(16)),
    column("message", sa.String(500)),
)

# --- Harvester (the pilot factory): instances, workers, their jobs, statistics, commands ----------------
harvester_instances = table(
    "harvester_instances",
    column("harvester_ID", sa.String(50), primary_key=True),
    column("owner", sa.String(250)),
    column("hostName", sa.String(128)),
    column("lastUpdate", DATETIME),
    column("startTime", DATETIME),
    column("sw_version", sa.String(64)),
    column("commit_stamp", sa.String(64)),
    column("description", sa.String(250)),
    column("data", TEXT),
)
harvester_workers = table(
    "harvester_workers",
    column("harvesterID", sa.String(50), primary_key=True),
    column("workerID", sa.BigInteger(), primary_key=True, autoincrement=False),
    column("batchID", sa.String(80)),
    column("queueName", sa.String(80)),
    column("status", sa.String(80), nullable=False),
    column("computingSite", sa.String(128)),
    column("nCore", sa.BigInteger()),
    column("nodeID", sa.String(80)),
    column("submitTime", DATETIME),
    column("startTime", DATETIME),
    column("endTime", DATETIME),
    column("lastUpdate", DATETIME, nullable=False),
    column("stdOut", sa.String(250)),
    column("stdErr", sa.String(250)),
    column("batchLog", sa.String(250)),
    column("jdl", sa.String(250)),
    column("resourceType", sa.String(56)),
    column("nativeExitCode", sa.BigInteger()),
    column("nativeStatus", sa.String(80)),
    column("diagMessage", sa.String(500)),
    column("nJobs", sa.BigInteger()),
    column("computingElement", sa.String(128)),
    column("submissionHost", sa.String(128)),
    column("harvesterHost", sa.String(128)),
    column("errorCode", sa.BigInteger()),
    column("jobType", sa.String(32)),
    column("minRamCount", sa.BigInteger()),
    column("syncLevel", sa.BigInteger()),
    column("pilotStatus", sa.String(80)),
    column("pilotStartTime", DATETIME),
    column("pilotEndTime", DATETIME),
)
harvester_rel_jobs_workers = table(
    "harvester_rel_jobs_workers",
    column("harvesterID", sa.String(50), primary_key=True),
    column("workerID", sa.BigInteger(), primary_key=True, autoincrement=False),
    column("PandaID", sa.BigInteger(), primary_key=True, autoincrement=False),
    column("lastUpdate", DATETIME),
)
harvester_worker_stats = table(
    "harvester_worker_stats",
    column("harvester_ID", sa.String(50), primary_key=True),
    column("computingSite", sa.String(128), primary_key=True),
    column("jobType", sa.String(32), primary_key=True),
    column("resourceType", sa.String(56), primary_key=True),
    column("status", sa.String(80), primary_key=True),
    column("n_workers", sa.BigInteger()),
    column("lastUpdate", DATETIME),
)
harvester_commands = table(
    "harvester_commands",
    column("command_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    column("harvester_ID", sa.String(50), nullable=False),
    column("command", sa.String(64), nullable=False),
    column("params", TEXT),
    column("ack_requested", sa.BigInteger()),
    column("status", sa.String(16), nullable=False),  # new -> retrieved -> acknowledged
    column("creation_date", DATETIME),
    column("status_date", DATETIME),
)
harvester_dialogs = table(
    "harvester_dialogs",
    column("harvester_id", sa.String(50), primary_key=True),
    column("diagID", sa.BigInteger(), primary_key=True, autoincrement=False),
    column("moduleName", sa.String(100)),
    column("identifier", sa.String(100)),
    column("creationTime", DATETIME),
    column("messageLevel", sa.String(10)),
    column("diagMessage", TEXT),
)
harvester_metrics = table(
    "harvester_metrics",
    column("harvester_ID", sa.String(50), primary_key=True),
    column("harvester_host", sa.String(128), primary_key=True),
    column("creation_time", DATETIME, primary_key=True),
    column("metrics", TEXT),
)
# Target slots per queue; "" in gshare / resourceType means "the whole queue" (keys cannot be NULL).
harvester_slots = table(
    "harvester_slots",
    column("pandaQueueName", sa.String(128), primary_key=True),
    column("gshare", sa.String(64), primary_key=True),
    column("resourceType", sa.String(56), primary_key=True),
    column("numSlots", sa.BigInteger()),
    column("modificationTime", DATETIME),
    column("expirationTime", DATETIME),
)

# The claim (getJob): site and status first, then the hand-out order.
CLAIM_INDEX = index(
    "ix_jobs_active_claim",
    jobs_active.c.computingSite,
    jobs_active.c.jobStatus,
    jobs_active.c.currentPriority.desc(),
    jobs_active.c.PandaID,
)
index("ix_jobs_active_status_mtime", jobs_active.c.jobStatus, jobs_active.c.modificationTime)
index("ix_jobs_defined_status_mtime", jobs_defined.c.jobStatus, jobs_defined.c.modificationTime)
index("ix_jobs_archived_mtime", jobs_archived.c.modificationTime)
# Retention purges old cached files by age.
index("ix_cache_files_mtime", cache_files.c.modificationTime)
index("ix_files_pandaid", files.c.PandaID)
index("ix_job_output_report_lock", job_output_report.c.lockedBy, job_output_report.c.timeStamp)
index("ix_job_status_log_pandaid", job_status_log.c.PandaID)
index("ix_pilot_log_pandaid", pilot_log.c.PandaID)
# The agents' dataset look-ups (Closer, Activator) and retention's age cut-offs on the history tables.
index("ix_files_destination_dblock", files.c.destinationDBlock)
index("ix_files_dispatch_dblock", files.c.dispatchDBlock)
index("ix_files_prod_dblock", files.c.prodDBlock)
index("ix_job_status_log_mtime", job_status_log.c.modificationTime)
index("ix_pilot_log_time", pilot_log.c.timeStamp)
# The monitor's filtered job lists, newest first (keyset pages on PandaID) over the archive.
index("ix_jobs_archived_monitor_status", jobs_archived.c.jobStatus, jobs_archived.c.PandaID)
index("ix_jobs_archived_monitor_site", jobs_archived.c.computingSite, jobs_archived.c.PandaID)
index("ix_jobs_archived_monitor_user", jobs_archived.c.prodUserName, jobs_archived.c.PandaID)
# The monitor's jobs list sorted by modification time (keyset on modificationTime, PandaID), per stage table.
for _table in (jobs_defined, jobs_active, jobs_archived):
    index(f"ix_{_table.name}_mtime_id", _table.c.modificationTime, _table.c.PandaID)

# Harvester: workers per queue and status (statistics, sweeps), a job's workers, the command queue, retention.
index("ix_harvester_workers_site_status", harvester_workers.c.computingSite, harvester_workers.c.status)
index("ix_harvester_workers_last_update", harvester_workers.c.lastUpdate)
index("ix_harvester_rel_pandaid", harvester_rel_jobs_workers.c.PandaID)
index("ix_harvester_commands_queue", harvester_commands.c.harvester_ID, harvester_commands.c.status,
      harvester_commands.c.creation_date)
index("ix_harvester_dialogs_time", harvester_dialogs.c.creationTime)
index("ix_harvester_metrics_time", harvester_metrics.c.creation_time)


# The standard resource types (ATLAS's definitions, which Harvester and the pilot expect):
# (name, min cores, max cores, min MB per core, max MB per core); None = unbounded.
STANDARD_RESOURCE_TYPES: tuple[tuple[str, int | None, int | None, int | None, int | None], ...] = (
    ("SCORE", 1, 1, None, 2000),
    ("MCORE", 2, None, None, 2000),
    ("SCORE_HIMEM", 1, 1, 2001, None),
    ("MCORE_HIMEM", 2, None, 2001, None),
)


def seed_resource_types(connection: sa.Connection) -> None:
    """Add the standard resource types that are missing (an operator's edits of existing ones stay)."""
    have = {row[0] for row in connection.execute(sa.text("SELECT name FROM resource_types"))}
    rows = [dict(zip(("name", "min_core", "max_core", "min_ram", "max_ram"), rt))
            for rt in STANDARD_RESOURCE_TYPES if rt[0] not in have]
    if rows:
        connection.execute(sa.text(
            "INSERT INTO resource_types (name, min_core, max_core, min_ram_per_core, max_ram_per_core)"
            " VALUES (:name, :min_core, :max_core, :min_ram, :max_ram)"), rows)


def create_sequences(connection: sa.Connection, names: Iterable[str] = SEQUENCES) -> None:
    """Create the ID sequences (PandaIDs, file row IDs, Harvester command IDs start at 1).

    Native sequences on PostgreSQL and MariaDB; on SQLite the ``id_sequences`` counter table
    that ``WrappedConnection.next_ids`` advances with ``UPDATE ... RETURNING``. A migration that brings
    a new sequence calls ``add_sequences`` with its name.
    """
    if connection.dialect.name == "sqlite":
        connection.execute(sa.text(
            f"CREATE TABLE {SEQUENCE_TABLE} (name VARCHAR(64) NOT NULL PRIMARY KEY, value BIGINT NOT NULL)"
        ))
    add_sequences(connection, names)


def add_sequences(connection: sa.Connection, names: Iterable[str]) -> None:
    """Create sequences ``names`` next to the existing ones (the SQLite counter table must exist)."""
    names = list(names)
    if connection.dialect.name == "sqlite":
        connection.execute(
            sa.text(f"INSERT INTO {SEQUENCE_TABLE} (name, value) VALUES (:name, 0)"),
            [{"name": name} for name in names],
        )
        return
    for name in names:
        connection.execute(sa.text(f"CREATE SEQUENCE {name} START WITH 1 INCREMENT BY 1"))
