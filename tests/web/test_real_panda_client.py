"""The real panda-client 2.2.0, unmodified, against our server on every backend.

The client runs in a subprocess with ``PANDA_URL_SSL`` pointing at the test server over plain http (no
credentials are sent; the server's ``auth = none`` test identity vouches for the caller). Each answer
is checked against what the database holds afterwards.
"""

from __future__ import annotations

import httpx

from tests.realclients import peek_job, run_panda_client, wait_activated

SUBMIT = """
from pandaclient.JobSpec import JobSpec
from pandaclient.FileSpec import FileSpec
jobs = []
for i in range(3):
    job = JobSpec()
    job.jobDefinitionID = 1
    job.jobName = "real-client-%s-%d" % ({tag!r}, i)
    job.transformation = "http://127.0.0.1/trf/user/runecho.sh"
    job.jobParameters = "hello from panda-client %d" % i
    job.prodSourceLabel = "user"
    job.assignedPriority = 1000
    job.currentPriority = 1000
    job.attemptNr = 0
    job.maxAttempt = 1
    job.computingSite = {site!r}
    job.destinationSE = {site!r}
    job.VO = "atlas"
    for lfn, kind in (("%s.out.root" % job.jobName, "output"), ("%s.log.tgz" % job.jobName, "log")):
        spec = FileSpec()
        spec.lfn = lfn
        spec.type = kind
        spec.dataset = "user.tester.real.%s" % kind
        spec.destinationDBlock = spec.dataset
        spec.destinationSE = job.computingSite
        job.addFile(spec)
    jobs.append(job)
emit(Client.submitJobs(jobs))
"""

STATUS = """
status, jobs = Client.{function}({ids!r})
emit([status, [None if j is None else
               [j.PandaID, j.jobStatus, j.jobName, j.jobParameters, sorted(f.lfn for f in j.Files)] for j in jobs]])
"""


def submit_three(server, queue: str, home, tag: str) -> list[int]:
    status, data = run_panda_client(server.url, home, SUBMIT.format(tag=tag, site=queue))
    assert status == 0
    assert len(data) == 3
    for panda_id, definition_id, extra in data:
        assert isinstance(panda_id, int) and panda_id > 0
        assert isinstance(definition_id, int)
        assert isinstance(extra, dict) and "jobsetID" in extra
    return [entry[0] for entry in data]


def test_hello(server, fresh_queue, tmp_path):
    status, message = run_panda_client(server.url, tmp_path, "emit(Client.hello())")
    assert status == 0 and isinstance(message, str)


def test_submit_and_describe(server, fresh_queue, tmp_path):
    ids = submit_three(server, fresh_queue, tmp_path, "describe")
    for i, panda_id in enumerate(ids):
        job = peek_job(server.db_url, panda_id)
        assert job.jobName == f"real-client-describe-{i}"
        assert job.jobParameters == f"hello from panda-client {i}"
        assert job.computingSite == fresh_queue and job.prodSourceLabel == "user"
        assert job.creationHost not in (None, "")
        assert sorted((f.lfn, f.type) for f in job.Files) == [
            (f"real-client-describe-{i}.log.tgz", "log"), (f"real-client-describe-{i}.out.root", "output")]
    wait_activated(server.db_url, ids)  # the Setupper runs after the reply: the status compared must be settled

    for function in ("getJobStatus", "getFullJobStatus"):
        status, described = run_panda_client(server.url, tmp_path,
                                             STATUS.format(function=function, ids=ids[:2] + [999999999]))
        assert status == 0
        assert described[2] is None
        for panda_id, entry in zip(ids, described[:2]):
            stored = peek_job(server.db_url, panda_id)
            assert entry == [panda_id, stored.jobStatus, stored.jobName, stored.jobParameters,
                             sorted(f.lfn for f in stored.Files)]
            assert entry[1] in ("defined", "assigned", "activated")


def test_kill_jobs(server, fresh_queue, tmp_path):
    ids = submit_three(server, fresh_queue, tmp_path, "kill")
    status, answer = run_panda_client(server.url, tmp_path, f"emit(Client.killJobs({ids[:2]!r}))")
    assert status == 0 and answer == [True, True]
    states = [peek_job(server.db_url, pid).jobStatus for pid in ids]
    assert states[:2] == ["cancelled", "cancelled"] and states[2] != "cancelled"
    status, described = run_panda_client(server.url, tmp_path, STATUS.format(function="getJobStatus", ids=ids[:1]))
    assert described[0][1] == "cancelled"


def test_put_file(server, fresh_queue, tmp_path):
    payload = tmp_path / "sources.realclient.tar.gz"
    payload.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 8)
    status, answer = run_panda_client(server.url, tmp_path, f"emit(Client.putFile({str(payload)!r}))")
    assert status == 0 and answer == "True"
    fetched = httpx.get(f"{server.url}/cache/{payload.name}")
    assert fetched.status_code == 200 and fetched.content == payload.read_bytes()
    again = run_panda_client(server.url, tmp_path, f"emit(Client.putFile({str(payload)!r}))")
    assert again[0] == 0 and again[1] != "True"


def test_bad_submission_is_refused(server, fresh_queue, tmp_path):
    body = "emit(Client.submitJobs_internal('this is not json'))"
    status, data = run_panda_client(server.url, tmp_path, body)
    assert status == 255 and data is None
