"""job/submit is asynchronous: the reply carries the PandaIDs once the jobs are stored, and the Setupper
runs afterwards in a helper process (here held back by a gate until the test has seen the reply)."""

from __future__ import annotations

from tests.web.gated_setupper import GATED_VO
from tests.web.helpers import make_job, submit, wait_status


def test_reply_does_not_wait_for_the_setupper(server, fresh_queue):
    jobs = [make_job(fresh_queue, f"gated-{server.backend}-{i}", VO=GATED_VO) for i in range(3)]
    ids = submit(server.url, jobs)  # returns while every job is held at the gate
    assert set(server.tb.get_job_status(ids).values()) == {("defined", 0, None)}
    for job in jobs:
        (server.gates / job.jobName).touch()
    wait_status(server.tb, ids, "activated")
    assert all(f.GUID for job in server.tb.peek_jobs(ids) for f in job.Files)
