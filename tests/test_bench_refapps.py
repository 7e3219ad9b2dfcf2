"""The reference apps of `make bench` (bench/refapps/) do the work they stand for, so that a ratio against them
compares like with like: the minimal cycle app hands each job out once, logs each change of state once, and its
final update archives the job with the pilot's file report applied. PostgreSQL only (they speak psycopg).
No timing is measured here."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterator

import falcon.testing
import pytest

from bench.refapps import claim, cycle, hello
from pandasrv.submit import JobRequest, build_jobs
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.wrapped_cursor import connect
from tests.conftest import TestDatabases, fresh_database

QUEUE = "REFAPP_QUEUE"
GUID = "5d8e4b8c-2f0a-4e0b-9a55-000000000001"


@pytest.fixture
def pg_url(test_databases: TestDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with fresh_database(test_databases, "postgresql", tmp_path) as url:
        proxy = DBProxy(url)
        proxy.connect()
        proxy.insert_jobs(build_jobs(JobRequest(site=QUEUE, transformation="/bin/true"), 2), status="activated")
        proxy.close()
        monkeypatch.setenv("PANDASRV_DB_URL", url)
        try:
            yield url
        finally:
            if claim.CONNECTIONS.conn is not None:  # this thread's connection, before the database is dropped
                claim.CONNECTIONS.conn.close()
                claim.CONNECTIONS.conn = None


def post(client: falcon.testing.TestClient, method: str, data: dict[str, Any], zipped: bool = False) -> Any:
    body = json.dumps(data).encode()
    result = client.simulate_post(f"/server/panda/{method}", body=gzip.compress(body) if zipped else body,
                                  headers={"Content-Type": "application/json"})
    assert result.status_code == 200, result.text
    return result.json


def rows(url: str, sql: str, binds: dict[str, Any]) -> list[tuple[Any, ...]]:
    conn = connect(url)
    try:
        cur = conn.cursor()
        cur.execute(sql, binds)
        found = [tuple(row) for row in cur.fetchall()]
        conn.rollback()
        return found
    finally:
        conn.close()


def test_minimal_cycle_hands_out_logs_and_archives(pg_url: str) -> None:
    client = falcon.testing.TestClient(cycle.app)
    pilot = {"siteName": QUEUE, "node": "wn1", "prodSourceLabel": "user"}
    job = post(client, "getJob", pilot, zipped=True)  # the pilot gzips its JSON body
    panda_id, log_file = int(job["PandaID"]), job["logFile"]
    assert job["StatusCode"] == 0 and log_file.endswith(".log.tgz") and log_file in job["outFiles"].split(",")
    for state in ("starting", "running", "running", "running"):
        assert post(client, "updateJob", {"jobId": str(panda_id), "state": state, "node": "wn1"})["StatusCode"] == 0
    report = json.dumps({log_file: {"guid": GUID, "fsize": 1024, "adler32": "0a1b2c3d"}})
    finished = {"jobId": str(panda_id), "state": "finished", "node": "wn1", "xml": report}
    assert post(client, "updateJob", finished)["StatusCode"] == 0

    assert rows(pg_url, "SELECT jobStatus FROM jobs_archived WHERE PandaID = :id", {"id": panda_id}) == [("finished",)]
    assert rows(pg_url, "SELECT COUNT(*) FROM jobs_active WHERE PandaID = :id", {"id": panda_id}) == [(0,)]
    assert rows(pg_url, "SELECT GUID, fsize, checksum, status FROM files WHERE PandaID = :id AND lfn = :lfn",
                {"id": panda_id, "lfn": log_file}) == [(GUID, 1024, "ad:0a1b2c3d", "ready")]
    logged = rows(pg_url, "SELECT jobStatus FROM job_status_log WHERE PandaID = :id ORDER BY modificationTime, jobStatus",
                  {"id": panda_id})
    assert sorted(status for (status,) in logged) == ["activated", "finished", "running", "sent", "starting"]

    assert post(client, "updateJob", {"jobId": str(panda_id), "state": "running"})["command"] == "tobekilled"
    other = post(client, "getJob", pilot)
    assert other["StatusCode"] == 0 and int(other["PandaID"]) != panda_id
    assert post(client, "getJob", pilot)["StatusCode"] == 20  # the queue is empty


def test_claim_app_and_hello_world(pg_url: str) -> None:
    client = falcon.testing.TestClient(claim.app)
    got = {int(post(client, "getJob", {"siteName": QUEUE})["PandaID"]) for _ in range(2)}
    assert len(got) == 2
    assert post(client, "getJob", {"siteName": QUEUE})["StatusCode"] == 20
    assert client.simulate_get("/api/v1/system/is_alive").text == "alive=yes"
    assert falcon.testing.TestClient(hello.app).simulate_post("/server/panda/getJob").text == "hello"
