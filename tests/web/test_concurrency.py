"""16 concurrent pilots against 2 server processes: every job is handed out exactly once. The pilots ask
again at once, with no pause between jobs, so some calls are shed (503 + Retry-After) and tried again, as the
real pilot does."""

from __future__ import annotations

import json
import threading
from collections import Counter

from tests.realclients import output_reports
from tests.web.helpers import make_job, pilot_call_retrying, submit, wait_status

PILOTS = 16
JOBS = 64


def test_sixteen_pilots_each_job_once(server, fresh_queue):
    ids = []
    for start in range(0, JOBS, 32):
        ids += submit(server.url, [make_job(fresh_queue, f"c{i}") for i in range(start, start + 32)])
    wait_status(server.tb, ids, "activated", timeout=120)
    received: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def pilot(number: int) -> None:
        request = {"siteName": fresh_queue, "prodSourceLabel": "user", "node": f"wn{number}"}
        try:
            while True:
                job, _ = pilot_call_retrying(server.url, "getJob", request)
                if job["StatusCode"] != "0":
                    assert job["StatusCode"] == "20", job
                    return
                panda_id = int(job["PandaID"])
                with lock:
                    received.append(panda_id)
                for state in ("running", "finished"):
                    reply, _ = pilot_call_retrying(server.url, "updateJob", {
                        "jobId": str(panda_id), "state": state, "attemptNr": job["attemptNr"], "node": f"wn{number}",
                        "xml": json.dumps({job["logFile"]: {"guid": "g", "fsize": 1}})})
                    assert reply == {"StatusCode": "0", "command": "NULL"}, reply
        except Exception as exc:  # reported below: assertion errors in threads would vanish
            errors.append(f"pilot {number}: {exc!r}")

    threads = [threading.Thread(target=pilot, args=(n,)) for n in range(PILOTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    duplicates = [pid for pid, n in Counter(received).items() if n > 1]
    assert not duplicates and sorted(received) == sorted(ids)
    assert {status for status, _, _ in server.tb.get_job_status(ids).values()} == {"holding"}
    assert all(len(output_reports(server.db_url, pid)) == 1 for pid in ids[:10])
    workers = {line.split()[2] for line in server.log().splitlines() if "panda getJob" in line}
    assert len(workers) == 2  # both server processes served getJob
