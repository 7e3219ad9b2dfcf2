"""Reference app 3: the minimal pilot cycle, the statements of a whole job's life on this stack done minimally.

    PANDASRV_DB_URL=postgresql://... gunicorn --chdir <repo> bench.refapps.cycle:app --workers 2 --threads 4

The minimal claim app's getJob, plus POST /server/panda/updateJob (the pilot's JSON form): ``starting`` and
``running`` are one guarded statement each (the update and, on a change of state, its status-log row);
``finished`` is one statement doing what pandasrv's final update and its Adder do together: the job moves to
jobs_archived as finished, its status-log row is written and the file report (``xml``: GUID, size, adler32 per
LFN) is applied to its files. No checks, no output-report table, no daemon.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import falcon
import psycopg

from bench.refapps.claim import CONNECTIONS, create_app, read_json

HEARTBEAT = """
WITH old AS (SELECT PandaID, jobStatus FROM jobs_active WHERE PandaID = %(id)s),
changed AS (
    UPDATE jobs_active j SET jobStatus = %(state)s::varchar, modificationTime = now(), modificationHost = %(node)s,
        stateChangeTime = CASE WHEN old.jobStatus <> %(state)s::varchar THEN now() ELSE j.stateChangeTime END
    FROM old WHERE j.PandaID = old.PandaID AND old.jobStatus IN ('sent', 'starting', 'running')
    RETURNING j.PandaID, old.jobStatus AS before, j.jobStatus, j.modificationTime, j.prodSourceLabel, j.cloud,
              j.computingSite, j.modificationHost),
logged AS (
    INSERT INTO job_status_log (PandaID, modificationTime, jobStatus, prodSourceLabel, cloud, computingSite,
                                modificationHost)
    SELECT PandaID, modificationTime, jobStatus, prodSourceLabel, cloud, computingSite, modificationHost
    FROM changed WHERE before <> jobStatus)
SELECT count(*) FROM changed
"""
FINISH = """
WITH moved AS (
    DELETE FROM jobs_active WHERE PandaID = %(id)s AND jobStatus IN ('sent', 'starting', 'running') RETURNING *),
archived AS (INSERT INTO jobs_archived ({columns}) SELECT {values} FROM moved),
logged AS (
    INSERT INTO job_status_log (PandaID, modificationTime, jobStatus, prodSourceLabel, cloud, computingSite,
                                modificationHost)
    SELECT PandaID, now(), 'finished', prodSourceLabel, cloud, computingSite, modificationHost FROM moved),
reported AS (
    UPDATE files f SET GUID = r.value->>'guid', fsize = (r.value->>'fsize')::bigint,
        checksum = 'ad:' || (r.value->>'adler32'), status = 'ready'
    FROM moved m, jsonb_each(%(report)s::jsonb) r WHERE f.PandaID = m.PandaID AND f.lfn = r.key)
SELECT count(*) FROM moved
"""
FINAL_VALUES = {"jobstatus": "'finished'", "endtime": "now()", "modificationtime": "now()",
                "statechangetime": "now()"}
OK = json.dumps({"StatusCode": 0, "command": "NULL"}).encode()
REFUSED = json.dumps({"StatusCode": 30, "command": "tobekilled"}).encode()

_finish_sql: str | None = None
_finish_lock = threading.Lock()


def finish_sql(conn: psycopg.Connection[Any]) -> str:
    """FINISH with the columns jobs_active and jobs_archived share, read once per process from the schema."""
    global _finish_sql
    with _finish_lock:
        if _finish_sql is None:
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs_archived' "
                "AND table_schema = current_schema() AND column_name IN (SELECT column_name FROM "
                "information_schema.columns WHERE table_name = 'jobs_active' AND table_schema = current_schema()) "
                "ORDER BY ordinal_position").fetchall()
            columns = [row[0] for row in rows]
            _finish_sql = FINISH.format(columns=", ".join(columns),
                                        values=", ".join(FINAL_VALUES.get(name, name) for name in columns))
        return _finish_sql


class UpdateJob:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = read_json(req)
        conn = CONNECTIONS.get()
        binds = {"id": int(data["jobId"]), "state": data.get("state"), "node": data.get("node"),
                 "report": data.get("xml") or "{}"}
        sql = finish_sql(conn) if data.get("state") == "finished" else HEARTBEAT
        row = conn.execute(sql, binds).fetchone()
        resp.content_type = falcon.MEDIA_JSON
        resp.data = OK if row and row[0] else REFUSED


app = create_app()
app.add_route("/server/panda/updateJob", UpdateJob())
