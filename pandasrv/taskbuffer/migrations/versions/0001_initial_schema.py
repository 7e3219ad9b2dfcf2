"""Initial schema: job stage tables, files, side tables, ID sequences.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

The column lists are frozen copies of ``JOB_COLUMNS`` / ``FILE_COLUMNS`` as of this revision: a later
attribute must arrive through a new migration, never by editing this one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from pandasrv.taskbuffer.schema import DATETIME, MARIADB_TABLE_OPTIONS, TEXT, column_type, create_sequences

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JOB_COLUMNS = (
    ('PandaID', 'int', 0), ('jobDefinitionID', 'int', 0), ('schedulerID', 'str', 128),
    ('pilotID', 'str', 200), ('creationTime', 'datetime', 0), ('creationHost', 'str', 128),
    ('modificationTime', 'datetime', 0), ('modificationHost', 'str', 128), ('AtlasRelease', 'str', 64),
    ('transformation', 'str', 250), ('homepackage', 'str', 80), ('prodSeriesLabel', 'str', 20),
    ('prodSourceLabel', 'str', 20), ('prodUserID', 'str', 250), ('assignedPriority', 'int', 0),
    ('currentPriority', 'int', 0), ('attemptNr', 'int', 0), ('maxAttempt', 'int', 0),
    ('jobStatus', 'str', 15), ('jobName', 'str', 256), ('maxCpuCount', 'int', 0), ('maxCpuUnit', 'str', 32),
    ('maxDiskCount', 'int', 0), ('maxDiskUnit', 'str', 4), ('ipConnectivity', 'str', 5),
    ('minRamCount', 'int', 0), ('minRamUnit', 'str', 2), ('startTime', 'datetime', 0),
    ('endTime', 'datetime', 0), ('cpuConsumptionTime', 'int', 0), ('cpuConsumptionUnit', 'str', 128),
    ('commandToPilot', 'str', 250), ('transExitCode', 'str', 128), ('pilotErrorCode', 'int', 0),
    ('pilotErrorDiag', 'str', 500), ('exeErrorCode', 'int', 0), ('exeErrorDiag', 'str', 500),
    ('supErrorCode', 'int', 0), ('supErrorDiag', 'str', 250), ('ddmErrorCode', 'int', 0),
    ('ddmErrorDiag', 'str', 500), ('brokerageErrorCode', 'int', 0), ('brokerageErrorDiag', 'str', 250),
    ('jobDispatcherErrorCode', 'int', 0), ('jobDispatcherErrorDiag', 'str', 250),
    ('taskBufferErrorCode', 'int', 0), ('taskBufferErrorDiag', 'str', 300), ('computingSite', 'str', 128),
    ('computingElement', 'str', 128), ('prodDBlock', 'str', 255), ('dispatchDBlock', 'str', 255),
    ('destinationDBlock', 'str', 255), ('destinationSE', 'str', 250), ('nEvents', 'int', 0),
    ('grid', 'str', 50), ('cloud', 'str', 50), ('cpuConversion', 'float', 0), ('sourceSite', 'str', 36),
    ('destinationSite', 'str', 36), ('transferType', 'str', 10), ('taskID', 'int', 0),
    ('cmtConfig', 'str', 250), ('stateChangeTime', 'datetime', 0), ('prodDBUpdateTime', 'datetime', 0),
    ('lockedby', 'str', 128), ('relocationFlag', 'int', 0), ('jobExecutionID', 'int', 0), ('VO', 'str', 16),
    ('pilotTiming', 'str', 100), ('workingGroup', 'str', 20), ('processingType', 'str', 64),
    ('prodUserName', 'str', 60), ('nInputFiles', 'int', 0), ('countryGroup', 'str', 20),
    ('batchID', 'str', 80), ('parentID', 'int', 0), ('specialHandling', 'str', 80), ('jobsetID', 'int', 0),
    ('coreCount', 'int', 0), ('nInputDataFiles', 'int', 0), ('inputFileType', 'str', 32),
    ('inputFileProject', 'str', 64), ('inputFileBytes', 'int', 0), ('nOutputDataFiles', 'int', 0),
    ('outputFileBytes', 'int', 0), ('jobMetrics', 'str', 500), ('workQueue_ID', 'int', 0),
    ('jediTaskID', 'int', 0), ('jobSubStatus', 'str', 80), ('actualCoreCount', 'int', 0),
    ('reqID', 'int', 0), ('maxRSS', 'int', 0), ('maxVMEM', 'int', 0), ('maxSWAP', 'int', 0),
    ('maxPSS', 'int', 0), ('avgRSS', 'int', 0), ('avgVMEM', 'int', 0), ('avgSWAP', 'int', 0),
    ('avgPSS', 'int', 0), ('maxWalltime', 'int', 0), ('nucleus', 'str', 52), ('eventService', 'int', 0),
    ('failedAttempt', 'int', 0), ('hs06sec', 'int', 0), ('gshare', 'str', 32), ('hs06', 'int', 0),
    ('totRCHAR', 'int', 0), ('totWCHAR', 'int', 0), ('totRBYTES', 'int', 0), ('totWBYTES', 'int', 0),
    ('rateRCHAR', 'int', 0), ('rateWCHAR', 'int', 0), ('rateRBYTES', 'int', 0), ('rateWBYTES', 'int', 0),
    ('resource_type', 'str', 56), ('diskIO', 'int', 0), ('memory_leak', 'float', 0),
    ('memory_leak_x2', 'float', 0), ('container_name', 'str', 200), ('job_label', 'str', 20),
    ('gco2_regional', 'float', 0), ('gco2_global', 'float', 0), ('cpu_architecture_level', 'str', 20),
    ('outputFileType', 'str', 32),
)
FILE_COLUMNS = (
    ('row_ID', 'int', 0), ('PandaID', 'int', 0), ('GUID', 'str', 64), ('lfn', 'str', 256),
    ('type', 'str', 20), ('dataset', 'str', 255), ('status', 'str', 64), ('prodDBlock', 'str', 255),
    ('prodDBlockToken', 'str', 250), ('dispatchDBlock', 'str', 255), ('dispatchDBlockToken', 'str', 250),
    ('destinationDBlock', 'str', 255), ('destinationDBlockToken', 'str', 250), ('destinationSE', 'str', 250),
    ('fsize', 'int', 0), ('md5sum', 'str', 40), ('checksum', 'str', 110), ('scope', 'str', 30),
    ('jediTaskID', 'int', 0), ('datasetID', 'int', 0), ('fileID', 'int', 0), ('attemptNr', 'int', 0),
)
TABLE_OPTIONS = {"quote": False, **MARIADB_TABLE_OPTIONS}


def col(name: str, type_: sa.types.TypeEngine[Any], **kwargs: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, quote=False, **kwargs)


def pk(name: str, type_: sa.types.TypeEngine[Any]) -> sa.Column[Any]:
    return col(name, type_, primary_key=True, autoincrement=False)


def spec_columns(columns: tuple[tuple[str, str, int], ...], primary_key: str) -> list[sa.Column[Any]]:
    return [
        col(name, column_type(kind, length), primary_key=name == primary_key, autoincrement=False)
        for name, kind, length in columns
    ]


def upgrade() -> None:
    for name in ("jobs_defined", "jobs_active", "jobs_archived"):
        op.create_table(name, *spec_columns(JOB_COLUMNS, "PandaID"), **TABLE_OPTIONS)
    op.create_table("files", *spec_columns(FILE_COLUMNS, "row_ID"), **TABLE_OPTIONS)
    op.create_table("job_params", pk("PandaID", sa.BigInteger()), col("jobParameters", TEXT), **TABLE_OPTIONS)
    op.create_table("job_metadata", pk("PandaID", sa.BigInteger()), col("metaData", TEXT), **TABLE_OPTIONS)
    op.create_table(
        "job_output_report",
        pk("PandaID", sa.BigInteger()),
        pk("attemptNr", sa.BigInteger()),
        col("prodSourceLabel", sa.String(20)),
        col("jobStatus", sa.String(15)),
        col("data", TEXT),
        col("timeStamp", DATETIME),
        col("lockedBy", sa.String(128)),
        col("lockedTime", DATETIME),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "job_status_log",
        col("PandaID", sa.BigInteger(), nullable=False),
        col("modificationTime", DATETIME, nullable=False),
        col("jobStatus", sa.String(15), nullable=False),
        col("prodSourceLabel", sa.String(20)),
        col("cloud", sa.String(50)),
        col("computingSite", sa.String(128)),
        col("modificationHost", sa.String(128)),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "pilot_log",
        col("PandaID", sa.BigInteger(), nullable=False),
        col("timeStamp", DATETIME, nullable=False),
        col("log", TEXT),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "process_locks",
        pk("component", sa.String(64)),
        col("lockedBy", sa.String(128)),
        col("lockedTime", DATETIME),
        col("expiresAt", DATETIME),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "queues",
        pk("name", sa.String(128)),
        col("site", sa.String(128)),
        col("status", sa.String(16)),
        col("data", TEXT),
        col("modificationTime", DATETIME),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "resource_types",
        pk("name", sa.String(56)),
        col("min_core", sa.BigInteger()),
        col("max_core", sa.BigInteger()),
        col("min_ram_per_core", sa.BigInteger()),
        col("max_ram_per_core", sa.BigInteger()),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "config",
        pk("app", sa.String(64)),
        pk("component", sa.String(64)),
        pk("config_key", sa.String(64)),
        pk("vo", sa.String(32)),
        col("value", TEXT),
        col("type", sa.String(16)),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "users",
        pk("name", sa.String(128)),
        col("dn", sa.String(250)),
        col("status", sa.String(16)),
        col("jobDefinitionID", sa.BigInteger()),
        col("jobsetID", sa.BigInteger()),
        col("modificationTime", DATETIME),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "sandbox_files",
        pk("fileName", sa.String(255)),
        col("fileSize", sa.BigInteger()),
        col("checksum", sa.String(110)),
        col("hostName", sa.String(128)),
        col("dn", sa.String(250)),
        col("creationTime", DATETIME),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "site_data",
        pk("site", sa.String(128)),
        col("getJob", sa.BigInteger()),
        col("updateJob", sa.BigInteger()),
        col("nStart", sa.BigInteger()),
        col("lastStart", DATETIME),
        col("lastUpdate", DATETIME),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "datasets",
        pk("name", sa.String(255)),
        col("type", sa.String(20)),
        col("status", sa.String(64)),
        col("creationTime", DATETIME),
        col("modificationTime", DATETIME),
        **TABLE_OPTIONS,
    )
    op.create_index(
        "ix_jobs_active_claim",
        "jobs_active",
        [sa.text(expression) for expression in ("computingSite", "jobStatus", "currentPriority DESC", "PandaID")],
        quote=False,
    )
    for table in ("files", "job_status_log", "pilot_log"):
        op.create_index(f"ix_{table}_pandaid", table, [sa.text("PandaID")], quote=False)
    create_sequences(op.get_bind(), ("pandaid_seq", "file_row_id_seq"))


def downgrade() -> None:
    raise RuntimeError("the initial schema cannot be downgraded; drop the database instead")
