"""The database schema, declared once with SQLAlchemy Core; DDL for every backend is generated from it.

All identifiers are unquoted (``quote=False``) so that SQL written as ``PandaID`` or ``jobStatus``
finds the same column on every backend, whatever case the backend folds names to. The job tables are
generated from ``JOB_COLUMNS`` (the wire format's attribute list) and the files table from
``FILE_COLUMNS``; the others are declared in a DDL-like line each (``declared_table``). Column kinds
map to types that keep values intact everywhere: microsecond datetimes (MariaDB ``DATETIME(6)``),
double-precision floats (MariaDB ``FLOAT`` is single) and unbounded text (MariaDB ``LONGTEXT``).

Migrations (``migrations/versions/``) must produce exactly this schema; ``tests/taskbuffer/test_schema.py``
compares a migrated database with a fresh one.
"""

from __future__ import annotations

import re
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
BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), *MARIADB)

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


# The kinds of declared_table beyond the JobSpec/FileSpec ones, and its column flags.
_MORE_TYPES: dict[str, sa.types.TypeEngine[Any]] = {"int32": sa.Integer(), "blob": BLOB}
_FLAGS: dict[str, dict[str, bool]] = {"key": {"primary_key": True, "autoincrement": False}, "required": {"nullable": False}}
_DEFINITION = re.compile(r"(?P<name>\w+) (?P<kind>\w+)(?:\((?P<length>\d+)\))?(?P<flags>(?: \w+)*)")


def declared_table(name: str, columns: str) -> sa.Table:
    """A table from its columns written as in DDL, comma-separated: ``name kind[(length)] [key] [required]``.

    The kinds are those of ``column_type`` ("int" is 64 bits) plus "int32" and "blob"; ``key`` columns make up
    the primary key (never auto-incremented: every key is given by the caller), ``required`` is NOT NULL.
    A table is then one line or a short paragraph, like the column tables of the job and file models,
    instead of a screenful of near-identical ``sa.Column`` calls.
    """
    items: list[sa.schema.SchemaItem] = []
    for definition in columns.split(","):
        match = _DEFINITION.fullmatch(" ".join(definition.split()))
        if match is None:
            raise ValueError(f"table {name}: cannot read column {definition.strip()!r}")
        kind, length = match["kind"], int(match["length"] or 0)
        type_ = _MORE_TYPES[kind] if kind in _MORE_TYPES else column_type(kind, length)
        flags: dict[str, bool] = {}
        for flag in match["flags"].split():
            if flag not in _FLAGS:
                raise ValueError(f"table {name}: unknown flag {flag!r} of column {match['name']}")
            flags.update(_FLAGS[flag])
        items.append(column(match["name"], type_, **flags))
    return table(name, *items)


_JOB_TABLE_COLUMNS = [spec for spec in JOB_COLUMNS if spec[0] in TABLE_ATTRIBUTES]


def _job_table(name: str) -> sa.Table:
    return table(name, *spec_columns(_JOB_TABLE_COLUMNS, "PandaID"))


jobs_defined = _job_table("jobs_defined")
jobs_active = _job_table("jobs_active")
jobs_archived = _job_table("jobs_archived")

files = table("files", *spec_columns(FILE_COLUMNS, "row_ID"))

job_params = declared_table("job_params", "PandaID int key, jobParameters text")
job_metadata = declared_table("job_metadata", "PandaID int key, metaData text")
job_output_report = declared_table("job_output_report", """
    PandaID int key, attemptNr int key, prodSourceLabel str(20), jobStatus str(15), data text, timeStamp datetime,
    lockedBy str(128), lockedTime datetime
""")
# reason: why the job moved where its status alone does not say (a claim given back, a pilot's final update).
job_status_log = declared_table("job_status_log", """
    PandaID int required, modificationTime datetime required, jobStatus str(15) required, prodSourceLabel str(20),
    cloud str(50), computingSite str(128), modificationHost str(128), reason str(256)
""")
pilot_log = declared_table("pilot_log", "PandaID int required, timeStamp datetime required, log text")
process_locks = declared_table("process_locks", """
    component str(64) key, lockedBy str(128), lockedTime datetime, expiresAt datetime
""")
queues = declared_table("queues", "name str(128) key, site str(128), status str(16), data text, modificationTime datetime")
resource_types = declared_table("resource_types", """
    name str(56) key, min_core int, max_core int, min_ram_per_core int, max_ram_per_core int
""")
# config_key: KEY is reserved in MariaDB.
config = declared_table("config", """
    app str(64) key, component str(64) key, config_key str(64) key, vo str(32) key, value text, type str(16)
""")
users = declared_table("users", """
    name str(128) key, dn str(250), status str(16), jobDefinitionID int, jobsetID int, modificationTime datetime
""")
sandbox_files = declared_table("sandbox_files", """
    fileName str(255) key, fileSize int, checksum str(110), hostName str(128), dn str(250), creationTime datetime
""")
# The upload cache (putFile, file_server/upload_cache_file, served at /cache/<name>): in the database so
# every node of a cluster serves what any node stored. One header row per name, the content in chunks
# (each well under MariaDB's max_allowed_packet) keyed by the upload's version, so a reader never mixes
# two uploads of one name.
cache_files = declared_table("cache_files", """
    name str(255) key, owner str(250) required, version int required, fileSize int required, nChunks int32 required,
    checksum str(32), creationTime datetime required, modificationTime datetime required
""")
cache_chunks = declared_table("cache_chunks", "name str(255) key, version int key, seq int32 key, data blob required")
# User secrets (creds/set_user_secrets): one row per owner, the owner's whole dictionary encrypted by
# logic/secrets.py (AES-GCM, the owner as associated data); ``version`` makes every change a compare-and-swap.
user_secrets = declared_table("user_secrets", """
    owner str(250) key, data text required, version int required, updated_at datetime required
""")
site_data = declared_table("site_data", """
    site str(128) key, getJob int, updateJob int, nStart int, lastStart datetime, lastUpdate datetime
""")
datasets = declared_table("datasets", """
    name str(255) key, type str(20), status str(64), creationTime datetime, modificationTime datetime
""")
# The last run of each daemon script on each machine (the monitor's daemon page).
daemon_runs = declared_table("daemon_runs", """
    script str(64) key, host str(128) key, startTime datetime, endTime datetime, result str(16), message str(500)
""")

# --- Harvester (the pilot factory): instances, workers, their jobs, statistics, commands ----------------
harvester_instances = declared_table("harvester_instances", """
    harvester_ID str(50) key, owner str(250), hostName str(128), lastUpdate datetime, startTime datetime, sw_version str(64),
    commit_stamp str(64), description str(250), data text
""")
harvester_workers = declared_table("harvester_workers", """
    harvesterID str(50) key, workerID int key, batchID str(80), queueName str(80), status str(80) required,
    computingSite str(128), nCore int, nodeID str(80), submitTime datetime, startTime datetime, endTime datetime,
    lastUpdate datetime required, stdOut str(250), stdErr str(250), batchLog str(250), jdl str(250), resourceType str(56),
    nativeExitCode int, nativeStatus str(80), diagMessage str(500), nJobs int, computingElement str(128),
    submissionHost str(128), harvesterHost str(128), errorCode int, jobType str(32), minRamCount int, syncLevel int,
    pilotStatus str(80), pilotStartTime datetime, pilotEndTime datetime
""")
harvester_rel_jobs_workers = declared_table("harvester_rel_jobs_workers", """
    harvesterID str(50) key, workerID int key, PandaID int key, lastUpdate datetime
""")
harvester_worker_stats = declared_table("harvester_worker_stats", """
    harvester_ID str(50) key, computingSite str(128) key, jobType str(32) key, resourceType str(56) key, status str(80) key,
    n_workers int, lastUpdate datetime
""")
# status: new -> retrieved -> acknowledged.
harvester_commands = declared_table("harvester_commands", """
    command_id int key, harvester_ID str(50) required, command str(64) required, params text, ack_requested int,
    status str(16) required, creation_date datetime, status_date datetime
""")
harvester_dialogs = declared_table("harvester_dialogs", """
    harvester_id str(50) key, diagID int key, moduleName str(100), identifier str(100), creationTime datetime,
    messageLevel str(10), diagMessage text
""")
harvester_metrics = declared_table("harvester_metrics", """
    harvester_ID str(50) key, harvester_host str(128) key, creation_time datetime key, metrics text
""")
# Target slots per queue; "" in gshare / resourceType means "the whole queue" (keys cannot be NULL).
harvester_slots = declared_table("harvester_slots", """
    pandaQueueName str(128) key, gshare str(64) key, resourceType str(56) key, numSlots int, modificationTime datetime,
    expirationTime datetime
""")

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
