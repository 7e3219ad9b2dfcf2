"""Reference app 2: the minimal claim app, what getJob costs on this stack without pandasrv's layers.

    PANDASRV_DB_URL=postgresql://... gunicorn --chdir <repo> bench.refapps.claim:app --workers 2 --threads 4

falcon + psycopg, one connection per thread, on pandasrv's schema: POST /server/panda/getJob reads the pilot's
(gzip or plain) JSON body, runs one statement that claims the best activated job of the queue (``FOR UPDATE
SKIP LOCKED`` along the claim index), logs the change and returns its parameters and files (autocommit: one
round trip), and answers the job as JSON. No ConBridge, no checks, no queue look-up, no metrics.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import os
import threading
from typing import Any

import falcon
import psycopg

CLAIM = """
WITH claimed AS (
    UPDATE jobs_active SET jobStatus = 'sent', modificationTime = now(), startTime = now(), stateChangeTime = now(),
        modificationHost = %(node)s
    WHERE PandaID = ANY(ARRAY(
        SELECT PandaID FROM jobs_active
        WHERE computingSite = %(site)s AND jobStatus = 'activated' AND prodSourceLabel IN ('managed', 'test', 'user')
        ORDER BY currentPriority DESC, PandaID LIMIT 1 FOR UPDATE SKIP LOCKED))
    RETURNING *),
logged AS (
    INSERT INTO job_status_log (PandaID, modificationTime, jobStatus, prodSourceLabel, cloud, computingSite,
                                modificationHost)
    SELECT PandaID, modificationTime, jobStatus, prodSourceLabel, cloud, computingSite, modificationHost FROM claimed)
SELECT row_to_json(c)::text, p.jobParameters,
       (SELECT json_agg(json_build_object('lfn', f.lfn, 'type', f.type, 'dataset', f.dataset, 'GUID', f.GUID,
                                          'scope', f.scope, 'destinationDBlock', f.destinationDBlock))::text
        FROM files f WHERE f.PandaID = c.PandaID)
FROM claimed c LEFT JOIN job_params p ON p.PandaID = c.PandaID
"""
NO_JOB = json.dumps({"StatusCode": 20, "errorDialog": "no jobs in the queue"}).encode()


def database_url() -> str:
    """psycopg's form of pandasrv's URL (``postgresql+psycopg://`` and friends become ``postgresql://``)."""
    url = os.environ["PANDASRV_DB_URL"]
    return "postgresql://" + url.split("://", 1)[1]


class Connections(threading.local):
    """One connection per gunicorn thread, opened at its first request."""

    conn: psycopg.Connection[Any] | None = None

    def get(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(database_url(), autocommit=True)  # one statement, one round trip
        return self.conn


CONNECTIONS = Connections()


def read_json(req: falcon.Request) -> dict[str, Any]:
    body = req.bounded_stream.read()
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    data = json.loads(body) if body else {}
    return data if isinstance(data, dict) else {}


def reply(resp: falcon.Response, data: dict[str, Any]) -> None:
    resp.content_type = falcon.MEDIA_JSON
    resp.data = json.dumps(data, default=str).encode()


def _pilot_form(job: dict[str, Any], parameters: str | None, files: list[dict[str, Any]]) -> dict[str, Any]:
    """The job as the pilot reads it: its columns (pandasrv's names), its parameters and its files' lists."""
    logs = [f for f in files if f["type"] == "log"]
    outputs = [f for f in files if f["type"] in ("output", "log")]
    inputs = [f for f in files if f["type"] == "input"]
    return {**job, "StatusCode": 0, "PandaID": job["pandaid"], "jobPars": parameters or "",
            "logFile": logs[0]["lfn"] if logs else "", "outFiles": ",".join(f["lfn"] for f in outputs),
            "inFiles": ",".join(f["lfn"] for f in inputs), "GUID": ",".join(str(f["GUID"]) for f in inputs),
            "destinationDblock": ",".join(str(f["destinationDBlock"]) for f in outputs),
            "realDatasets": ",".join(str(f["dataset"]) for f in outputs),
            "scopeOut": ",".join(str(f["scope"]) for f in outputs), "time": _dt.datetime.now().isoformat()}


class GetJob:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = read_json(req)
        conn = CONNECTIONS.get()
        row = conn.execute(CLAIM, {"site": data.get("siteName"), "node": data.get("node")}).fetchone()
        if row is None:
            resp.content_type = falcon.MEDIA_JSON
            resp.data = NO_JOB
            return
        reply(resp, _pilot_form(json.loads(row[0]), row[1], json.loads(row[2] or "[]")))


class IsAlive:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.data = b"alive=yes"


def create_app() -> falcon.App[falcon.Request, falcon.Response]:
    app = falcon.App()
    app.add_route("/server/panda/getJob", GetJob())
    app.add_route("/api/v1/system/is_alive", IsAlive())
    return app


app = create_app()
