"""A large archive in seconds: clone one real archived job N times with set-based SQL.

The job history benchmark (``bench/history.py``) and the plan test (``tests/taskbuffer/test_hot_plans.py``)
need hundreds of thousands to a million archived jobs, with their files, parameters and status-log rows.
Through the API that takes hours; here one template job is stored and moved to ``finished`` the normal way
(so its rows are exactly what the server writes), then each of its tables gets one ``INSERT ... SELECT``
per chunk that copies the template's rows over a row generator (``generate_series`` on PostgreSQL, the
Sequence engine's ``seq_1_to_N`` on MariaDB, a recursive CTE on SQLite). The clones take PandaIDs and
row_IDs just above the template's and the sequences are moved past them, so jobs submitted afterwards are
newer than the whole archive, as in a real database.
"""

from __future__ import annotations

import datetime as _dt

from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.file_spec import FILE_ATTRIBUTES
from pandasrv.taskbuffer.job_spec import TABLE_ATTRIBUTES, JobSpec
from pandasrv.taskbuffer.schema import job_status_log
from pandasrv.taskbuffer.wrapped_cursor import WrappedConnection, connect

# The template's way to the archive: every status a pilot's job passes through, one status-log row each.
LIFE = ("activated", "sent", "running", "holding", "finished")
# Clones per INSERT: keeps each transaction (WAL, undo log) bounded.
CHUNK = 100_000
_LOG_COLUMNS = [column.name for column in job_status_log.columns]


def seed_archive(db_url: str, template: JobSpec, n: int, modified: _dt.datetime) -> range:
    """Add ``n`` archived copies of ``template`` (with its files, parameters and status-log rows), last
    modified at ``modified``; returns their PandaIDs. The database must have no other writer meanwhile."""
    proxy = DBProxy(db_url)
    try:
        (panda_id,) = proxy.insert_jobs([template])  # a DBProxy in process: the template's files get row_IDs
        for status in LIFE:
            proxy.set_job_status([panda_id], status)
    finally:
        proxy.close()
    files = sorted(spec.row_ID for spec in template.Files)
    conn = connect(db_url)
    try:
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            conn.begin()
            _clone(conn, panda_id, files, start, size, modified)
            conn.commit()
        conn.begin()
        _move_sequence(conn, "pandaid_seq", panda_id + n)
        if files:
            _move_sequence(conn, "file_row_id_seq", files[-1] + n * len(files))
        conn.commit()
    finally:
        conn.close()
    return range(panda_id + 1, panda_id + n + 1)


def _clone(conn: WrappedConnection, template: int, files: list[int], start: int, size: int,
           modified: _dt.datetime) -> None:
    """Clones ``start + 1 .. start + size`` of the template: PandaID template + k, file i row_ID last + ..."""
    series = _series(conn.backend, size)
    binds = {"tpl": template, "base": template + start, "mtime": modified}
    cur = conn.cursor()

    def copy(table: str, columns: list[str], computed: dict[str, str], where: str, extra: dict[str, int]) -> None:
        values = ", ".join(computed.get(name, f"t.{name}") for name in columns)
        cur.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {table} t CROSS JOIN {series}"
                    f" WHERE {where}", {**binds, **extra})

    stamped = {"PandaID": ":base + g.x", "modificationTime": ":mtime"}
    copy("jobs_archived", list(TABLE_ATTRIBUTES), {**stamped, "stateChangeTime": ":mtime", "endTime": ":mtime"},
         "t.PandaID = :tpl", {})
    copy("job_params", ["PandaID", "jobParameters"], stamped, "t.PandaID = :tpl", {})
    copy("job_status_log", _LOG_COLUMNS, stamped, "t.PandaID = :tpl", {})
    per_job, last = len(files), files[-1] if files else 0
    for i, row_id in enumerate(files, start=1):
        row = {"row_ID": ":last + (:start + g.x - 1) * :per_job + :i", "PandaID": ":base + g.x"}
        copy("files", list(FILE_ATTRIBUTES), row, "t.row_ID = :row",
             {"row": row_id, "last": last, "start": start, "per_job": per_job, "i": i})


def _series(backend: str, n: int) -> str:
    """A derived table ``g(x)`` of the integers 1..n."""
    if backend == "postgresql":
        return f"generate_series(1, {int(n)}) AS g(x)"
    if backend == "mysql":
        return f"(SELECT seq AS x FROM seq_1_to_{int(n)}) g"
    return f"(WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {int(n)}) SELECT x FROM s) g"


def _move_sequence(conn: WrappedConnection, sequence: str, value: int) -> None:
    """Make the next value of ``sequence`` larger than ``value``."""
    statement = {"postgresql": f"SELECT setval('{sequence}', :v)", "mysql": f"SELECT SETVAL({sequence}, :v)",
                 "sqlite": "UPDATE id_sequences SET value = :v WHERE name = :name"}[conn.backend]
    cur = conn.cursor()
    cur.execute(statement, {"v": value, "name": sequence})
    if conn.backend != "sqlite":
        cur.fetchall()


def analyze(db_url: str) -> None:
    """Fresh planner statistics for the seeded tables, as autovacuum (PostgreSQL, also the visibility map
    that index-only scans need) or InnoDB's automatic statistics would have them after a while."""
    conn = connect(db_url)
    try:
        tables = ("jobs_archived", "files", "job_status_log", "job_params")
        cur = conn.cursor()
        if conn.backend == "postgresql":
            conn.raw.autocommit = True
            cur.execute(f"VACUUM ANALYZE {', '.join(tables)}")
        elif conn.backend == "mysql":
            cur.execute(f"ANALYZE TABLE {', '.join(tables)}").fetchall()
        else:
            cur.execute("ANALYZE")
    finally:
        conn.close()
