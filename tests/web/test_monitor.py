"""The monitor pages in process (falcon's test client) on every backend: JSON forms checked against the
database, filters, keyset pages, job detail, the daemon page, bad input, escaping and access rules."""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Iterator

import pytest
from markupsafe import escape

from pandasrv.config import load_settings
from pandasrv.taskbuffer.file_spec import FileSpec
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.job_states import STAGE_TABLES
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from pandasrv.taskbuffer.wrapped_cursor import connect
from pandasrv.web.app import create_app
from tests.web.helpers import LocalClient

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'
USER_DN = "/DC=org/CN=Alice Smith"


def make_job(name: str, site: str, user: str, label: str = "user", **values: Any) -> JobSpec:
    job = JobSpec(jobName=name, computingSite=site, prodSourceLabel=label, prodUserName=user, transformation="run.sh",
                  jobParameters=f"--secret-for {name}", currentPriority=100, assignedPriority=100, **values)
    job.add_file(FileSpec(lfn=f"{name}.in", type="input", dataset="in.ds", status="ready", GUID="g-in"))
    job.add_file(FileSpec(lfn=f"{name}.log.tgz", type="log", dataset="log.ds"))
    return job


def client(db_url: str, **overrides: Any) -> LocalClient:
    settings = load_settings(db_url=db_url, db_bridge=False, db_connections=1,
                             monitor={"counts_cache_seconds": 0, "page_size": 50, **overrides.pop("monitor", {})},
                             **overrides)
    return LocalClient(create_app(settings))


@pytest.fixture
def tb(db_url: str) -> Iterator[TaskBuffer]:
    buffer = TaskBuffer(load_settings(db_url=db_url, db_bridge=False, db_connections=1))
    yield buffer
    buffer.close()


@pytest.fixture
def jobs(tb: TaskBuffer) -> dict[str, list[int]]:
    """Jobs in four states on two queues by two users; the failed ones carry error codes."""
    made: dict[str, list[int]] = {}
    plan = [("activated", "Q_A", "alice", "user", 5), ("running", "Q_A", "bob", "managed", 3),
            ("activated", "Q_B", "bob", "user", 4), ("failed", "Q_B", "alice", "user", 2),
            ("finished", "Q_A", "alice", "managed", 6)]
    for i, (state, site, user, label, n) in enumerate(plan):
        extra = {"pilotErrorCode": 1305, "pilotErrorDiag": "payload failed <b>hard</b>"} if state == "failed" else {}
        batch = [make_job(f"j{i}_{k}", site, user, label, **extra) for k in range(n)]
        made.setdefault(state, []).extend(tb.insert_jobs(batch, status=state))
    return made


def db_counts(db_url: str, where: str = "", binds: dict[str, Any] | None = None) -> dict[str, int]:
    conn = connect(db_url)
    try:
        conn.begin()
        counts: dict[str, int] = {}
        for table in STAGE_TABLES:
            cur = conn.cursor()
            cur.execute(f"SELECT jobStatus, COUNT(*) FROM {table}{where} GROUP BY jobStatus", binds or {})
            for state, n in cur.fetchall():
                counts[state] = counts.get(state, 0) + int(n)
        conn.rollback()
        return counts
    finally:
        conn.close()


def get_json(c: LocalClient, path: str, status: int = 200, **kwargs: Any) -> dict[str, Any]:
    reply = c.simulate_get(path, params={**kwargs.pop("params", {}), "format": "json"}, **kwargs)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    return reply.json


def test_overview_counts_match_the_database(db_url, jobs):
    data = get_json(client(db_url), "/monitor/")
    assert data["jobs_by_state"] == db_counts(db_url) == {"activated": 9, "running": 3, "failed": 2, "finished": 6}
    assert data["total"] == 20
    assert data["live_jobs_by_queue"] == {"Q_A": {"activated": 5, "running": 3}, "Q_B": {"activated": 4}}
    assert data["jobs_by_label"] == {"user": 11, "managed": 9}
    assert sorted(e["PandaID"] for e in data["recent_errors"]) == sorted(jobs["failed"])
    assert data["recent_errors"][0]["errors"] == [{"field": "pilotError", "code": 1305,
                                                   "diag": "payload failed <b>hard</b>"}]


@pytest.mark.parametrize("filters", [{}, {"state": "activated"}, {"queue": "Q_A"}, {"user": "alice"},
                                     {"label": "managed"}, {"queue": "Q_B", "user": "alice", "state": "failed"},
                                     {"state": "finished", "queue": "Q_B"}])
def test_jobs_list_filters_and_keyset_pages(db_url, jobs, filters):
    c = client(db_url)
    columns = {"state": "jobStatus", "queue": "computingSite", "user": "prodUserName", "label": "prodSourceLabel"}
    where = " AND ".join(f"{columns[k]} = :{k}" for k in filters)
    expected = db_counts(db_url, f" WHERE {where}" if where else "", filters)
    seen: list[int] = []
    before = None
    for _ in range(30):
        params = {**filters, "limit": "3", **({"before": str(before)} if before else {})}
        page = get_json(c, "/monitor/jobs", params=params)
        assert len(page["jobs"]) <= 3
        for job in page["jobs"]:
            assert all(job[columns[k]] == v for k, v in filters.items())
        seen += [job["PandaID"] for job in page["jobs"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == len(seen)
    assert len(seen) == sum(expected.values())
    others = {k: v for k, v in filters.items() if k != "state"}
    where = " AND ".join(f"{columns[k]} = :{k}" for k in others)
    assert page["jobs_by_state"] == db_counts(db_url, f" WHERE {where}" if where else "", others)


def test_time_window_keeps_recent_jobs(db_url, tb, jobs):
    old = jobs["finished"][:2]
    conn = connect(db_url)
    conn.begin()
    conn.cursor().execute("UPDATE jobs_archived SET modificationTime = :t WHERE PandaID IN (:a, :b)",
                          {"t": _dt.datetime(2020, 1, 1), "a": old[0], "b": old[1]})
    conn.commit()
    conn.close()
    page = get_json(client(db_url), "/monitor/jobs", params={"hours": "1", "state": "finished"})
    assert sorted(j["PandaID"] for j in page["jobs"]) == sorted(jobs["finished"][2:])


def test_job_detail_shows_files_parameters_history_and_errors(db_url, tb, jobs):
    panda_id = jobs["failed"][0]
    data = get_json(client(db_url), f"/monitor/jobs/{panda_id}")
    assert data["attributes"]["PandaID"] == panda_id and data["attributes"]["jobStatus"] == "failed"
    assert {f["lfn"] for f in data["files"]} == {"j3_0.in", "j3_0.log.tgz"}
    assert data["jobParameters"] == "--secret-for j3_0"
    assert data["errors"] == [{"field": "pilotError", "code": 1305, "diag": "payload failed <b>hard</b>"}]
    assert data["log_files"] == [{"lfn": "j3_0.log.tgz", "url": "/cache/j3_0.log.tgz"}]
    assert [h["jobStatus"] for h in data["history"]] == [h["jobStatus"] for h in tb.monitor_status_history(panda_id)]


def test_html_pages_link_to_each_other(db_url, jobs):
    c = client(db_url)
    page = c.simulate_get("/monitor/jobs", params={"queue": "Q_B"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    links = set(re.findall(r'href="(/monitor/jobs/\d+)"', page.text))
    assert len(links) == 6
    for link in sorted(links)[:2]:
        detail = c.simulate_get(link)
        assert detail.status_code == 200 and 'id="job-state"' in detail.text
    for path in ("/monitor/", "/monitor/queues", "/monitor/users", "/monitor/daemon"):
        reply = c.simulate_get(path)
        assert reply.status_code == 200, path
        assert "Content-Security-Policy" in reply.headers


def test_hostile_job_fields_are_escaped(db_url, tb):
    (panda_id,) = tb.insert_jobs([make_job(HOSTILE, HOSTILE[:100], HOSTILE[:60])], status="activated")
    c = client(db_url)
    for path in ("/monitor/jobs", f"/monitor/jobs/{panda_id}", "/monitor/", "/monitor/queues", "/monitor/users"):
        text = c.simulate_get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
    assert escape(HOSTILE) in c.simulate_get(f"/monitor/jobs/{panda_id}").text
    assert get_json(c, f"/monitor/jobs/{panda_id}")["attributes"]["jobName"] == HOSTILE


@pytest.mark.parametrize(("path", "params", "status", "message"), [
    ("/monitor/jobs", {"colour": "red"}, 400, "unknown filter colour"),
    ("/monitor/jobs", {"state": "flying"}, 400, "unknown job state 'flying'"),
    ("/monitor/jobs", {"before": "abc"}, 400, "before must be a whole number"),
    ("/monitor/jobs", {"limit": "0"}, 400, "limit must be between 1 and 1000"),
    ("/monitor/jobs", {"hours": "-5"}, 400, "hours must be between"),
    ("/monitor/jobs/abc", {}, 400, "a PandaID is a whole number"),
    ("/monitor/jobs/99999999", {}, 404, "job 99999999 not found"),
])
def test_bad_input_gets_a_clear_message(db_url, path, params, status, message):
    c = client(db_url)
    data = get_json(c, path, status=status, params=params)
    assert message in data["error"]
    reply = c.simulate_get(path, params=params)
    assert reply.status_code == status and escape(message) in reply.text
    assert c.simulate_get("/monitor/", params={"format": "xml"}).status_code == 400


def test_pages_cannot_change_state(db_url):
    c = client(db_url)
    for path in ("/monitor/", "/monitor/jobs", "/monitor/daemon"):
        assert c.simulate_post(path).status_code == 405


def test_daemon_page_shows_last_runs_and_lease_holders(db_url, tb):
    started = _dt.datetime(2026, 12, 1, 10, 0, 0)
    tb.record_daemon_run("add_main", "node1", started, started + _dt.timedelta(seconds=2.5), "ok")
    tb.record_daemon_run("archive", "node1", started, started + _dt.timedelta(seconds=1), "error", "ValueError: boom")
    tb.record_daemon_run("archive", "node1", started, started + _dt.timedelta(seconds=4), "error", "ValueError: again")
    assert tb.acquire_lease("pandaD.archive", "node1:123", 600)
    data = get_json(client(db_url), "/monitor/daemon")
    scripts = {s["name"]: s for s in data["scripts"]}
    assert scripts["add_main"]["last_run"]["result"] == "ok" and scripts["add_main"]["last_run"]["duration"] == 2.5
    assert scripts["archive"]["last_run"]["message"] == "ValueError: again"
    assert scripts["archive"]["lease"]["lockedBy"] == "node1:123"
    assert scripts["tmpwatch"]["last_run"] is None and scripts["tmpwatch"]["lease"] is None
    assert "ValueError: again" in client(db_url).simulate_get("/monitor/daemon").text


def test_queues_page(db_url, tb, jobs):
    tb.add_queue("Q_A", "Q_A", "online", {})
    tb.add_queue("Q_B", "Q_B", "offline", {})
    queues = {q["name"]: q for q in get_json(client(db_url), "/monitor/queues")["queues"]}
    assert queues["Q_A"]["online"] and not queues["Q_B"]["online"]
    assert queues["Q_A"]["jobs_by_state"] == {"activated": 5, "running": 3}


def test_users_page(db_url, jobs):
    users = {u["name"]: u for u in get_json(client(db_url), "/monitor/users")["users"]}
    assert users["alice"]["jobs_by_state"] == {"activated": 5, "failed": 2, "finished": 6}
    assert users["bob"]["total"] == 7


@pytest.mark.backends("sqlite")
def test_access_with_certificates(db_url, jobs):
    c = client(db_url, auth="x509", trust_proxy_headers=False)
    assert "needs a verified token or certificate" in get_json(c, "/monitor/jobs", status=403)["error"]
    signed_in = {"SSL_CLIENT_S_DN": USER_DN}
    assert len(get_json(c, "/monitor/jobs", extras=signed_in)["jobs"]) == 20
    panda_id = jobs["failed"][0]
    public = client(db_url, auth="x509", monitor={"anonymous": True})
    detail = get_json(public, f"/monitor/jobs/{panda_id}")
    assert detail["files"] == [] and detail["jobParameters"] is None and detail["private_hidden"]
    assert "--secret-for" not in public.simulate_get(f"/monitor/jobs/{panda_id}").text
    assert get_json(public, f"/monitor/jobs/{panda_id}", extras=signed_in)["jobParameters"] == "--secret-for j3_0"


@pytest.mark.backends("sqlite")
def test_own_jobs_only(db_url, tb):
    mine = tb.insert_jobs([make_job("mine", "Q", "Alice Smith")], status="activated")[0]
    other = tb.insert_jobs([make_job("other", "Q", "bob")], status="activated")[0]
    c = client(db_url, auth="x509", monitor={"own_jobs_only": True})
    signed_in = {"SSL_CLIENT_S_DN": USER_DN}
    assert [j["PandaID"] for j in get_json(c, "/monitor/jobs", extras=signed_in)["jobs"]] == [mine]
    get_json(c, f"/monitor/jobs/{other}", status=404, extras=signed_in)
    get_json(c, "/monitor/jobs", status=403, extras=signed_in, params={"user": "bob"})
    assert get_json(c, "/monitor/", extras=signed_in)["total"] == 1


def walk_pages(c: LocalClient, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every row of a jobs list, following ``next_after`` page by page."""
    seen: list[dict[str, Any]] = []
    after = None
    for _ in range(50):
        page = get_json(c, "/monitor/jobs", params={**params, **({"after": after} if after else {})})
        seen += page["jobs"]
        after = page["next_after"]
        if after is None:
            return seen
    raise AssertionError("the pages did not end")


@pytest.mark.parametrize("sort", ["-PandaID", "PandaID", "-modificationTime", "modificationTime"])
@pytest.mark.parametrize("filters", [{}, {"queue": "Q_A"}, {"state": "activated"}])
def test_sorted_keyset_pages_cover_the_list_once_in_order(db_url, jobs, sort, filters):
    """Ties on the time (jobs inserted together share it) are broken by PandaID: no row is lost or repeated."""
    conn = connect(db_url)
    conn.begin()
    for k, panda_id in enumerate(jobs["activated"][:4]):  # a few distinct times, the rest tied
        conn.cursor().execute("UPDATE jobs_active SET modificationTime = :t WHERE PandaID = :id",
                              {"t": _dt.datetime(2026, 1, 1 + k % 2, 12), "id": panda_id})
    conn.commit()
    conn.close()
    c = client(db_url)
    rows = walk_pages(c, {**filters, "sort": sort, "limit": "4"})
    column = sort.lstrip("-")
    keys = [(r[column] if column == "PandaID" else _dt.datetime.fromisoformat(r[column]), r["PandaID"]) for r in rows]
    assert keys == sorted(keys, reverse=sort.startswith("-"))
    columns = {"state": "jobStatus", "queue": "computingSite"}
    where = " AND ".join(f"{columns[k]} = :{k}" for k in filters)
    assert len({r["PandaID"] for r in rows}) == len(rows) == sum(db_counts(db_url, f" WHERE {where}" if where else "",
                                                                          filters).values())


def test_users_page_lists_most_recent_submissions(db_url, jobs):
    users = get_json(client(db_url), "/monitor/users")["users"]
    assert {u["name"] for u in users} == {"alice", "bob"}
    for user in users:
        own = [r[0] for r in db_rows(db_url, "SELECT PandaID FROM {table} WHERE prodUserName = :u", {"u": user["name"]})]
        assert [j["PandaID"] for j in user["recent"]] == sorted(own, reverse=True)[:3]
        assert user["last_submission"] == user["recent"][0]["creationTime"]
    assert users[0]["recent"][0]["PandaID"] > users[1]["recent"][0]["PandaID"]  # most recently active first


def db_rows(db_url: str, sql: str, binds: dict[str, Any], tables: tuple[str, ...] = STAGE_TABLES) -> list[tuple]:
    """``sql`` (with ``{table}``) run on each of ``tables``, the rows together."""
    conn = connect(db_url)
    try:
        conn.begin()
        rows: list[tuple] = []
        for table in tables:
            cur = conn.cursor()
            cur.execute(sql.format(table=table), binds)
            rows += list(cur.fetchall())
        conn.rollback()
        return rows
    finally:
        conn.close()


def test_plots_json_matches_the_status_log(db_url, tb, jobs):
    """Status changes per hour and per queue equal a direct count over job_status_log in the same window;
    a change older than the window is not counted."""
    conn = connect(db_url)
    conn.begin()
    three_hours_ago = _dt.datetime.now(_dt.UTC).replace(tzinfo=None) - _dt.timedelta(hours=3)
    conn.cursor().execute("UPDATE job_status_log SET modificationTime = :t WHERE PandaID = :id",
                          {"t": three_hours_ago, "id": jobs["running"][0]})
    conn.cursor().execute("UPDATE job_status_log SET modificationTime = :t WHERE PandaID = :id",
                          {"t": _dt.datetime(2020, 1, 1), "id": jobs["running"][1]})
    conn.commit()
    conn.close()
    c = client(db_url)
    data = get_json(c, "/monitor/plots")
    assert data["hours"] == 24 and len(data["timeline"]) == 24
    start, end = _dt.datetime.fromisoformat(data["start"]), _dt.datetime.fromisoformat(data["end"])
    log = db_rows(db_url, "SELECT modificationTime, jobStatus, computingSite FROM {table}"
                  " WHERE modificationTime >= :s AND modificationTime < :e", {"s": start, "e": end}, ("job_status_log",))
    expected_hours: list[dict[str, int]] = [{} for _ in range(24)]
    expected_queues: dict[str, dict[str, int]] = {}
    for when, state, site in log:
        index = int((when - start).total_seconds() // 3600)
        expected_hours[index][state] = expected_hours[index].get(state, 0) + 1
        expected_queues.setdefault(site, {})[state] = expected_queues.get(site, {}).get(state, 0) + 1
    assert [bucket["counts"] for bucket in data["timeline"]] == expected_hours
    assert data["by_queue"] == expected_queues
    assert sum(sum(b["counts"].values()) for b in data["timeline"]) == 19  # 20 jobs, one moved out of the window
    assert sum(expected_hours[-4].values()) + sum(expected_hours[-5].values()) >= 1  # the one moved 3 h back
    page = c.simulate_get("/monitor/plots")
    assert page.status_code == 200
    assert page.text.count('<rect class="bar state-') >= len(data["states"]) + sum(len(b["counts"]) for b in data["timeline"])
    assert 'id="plot-timeline"' in page.text and 'id="plot-queues"' in page.text
    assert len(get_json(c, "/monitor/plots", params={"hours": "6"})["timeline"]) == 6


PAGES = {  # page path -> its parameters and a valid value of each
    "/monitor/": {}, "/monitor/queues": {}, "/monitor/users": {}, "/monitor/daemon": {},
    "/monitor/plots": {"hours": "24"}, "/monitor/jobs/1": {},
    "/monitor/jobs": {"state": "running", "queue": "Q_A", "user": "alice", "label": "user", "hours": "2",
                      "before": "5", "sort": "-PandaID", "limit": "10"},
}
NUMERIC = {"hours", "before", "limit"}
BAD_ANYWHERE = ["\x00", "a\x00b", "x" * 300, "\u202e\x07bell", "\t"]
BAD_NUMBERS = ["", "abc", "-1", "0", "1.5", "1e9", "9" * 30, "0x10", "NaN", "١٢", "' OR 1=1 --"]
BAD_CHOICES = {"state": ["flying", "RUNNING", "' OR 1=1 --", "running;"], "sort": ["jobName", "-", "PandaID DESC", "--PandaID"]}


def bad_cases() -> Iterator[tuple[str, dict[str, str]]]:
    """For every page: an unknown parameter, and each of its parameters with every bad value of its kind
    (the other parameters valid)."""
    for path, valid in PAGES.items():
        yield path, {"colour": "red"}
        yield path, {"format": "xml"}
        for name in valid:
            values = BAD_ANYWHERE + BAD_NUMBERS[1:] if name in NUMERIC else BAD_ANYWHERE + BAD_CHOICES.get(name, [])
            for value in values:
                yield path, {**valid, name: value}
    yield "/monitor/jobs", {"sort": "-modificationTime", "after": "123"}
    yield "/monitor/jobs", {"sort": "PandaID", "after": "2026-01-01T00:00:00_5"}
    yield "/monitor/jobs", {"sort": "-modificationTime", "after": "yesterday_5"}
    yield "/monitor/jobs", {"sort": "PandaID", "before": "5"}
    yield "/monitor/jobs", {"after": "5", "before": "5"}


def test_every_bad_value_of_every_page_gets_a_clear_400(db_url, jobs):
    """Generated: no bad value reaches the database or gives a 500; the message names the parameter."""
    c = client(db_url)
    cases = list(bad_cases())
    assert len(cases) > 100
    for path, params in cases:
        reply = c.simulate_get(path, params={**params, "format": "json"} if "format" not in params else params)
        assert reply.status_code == 400, (path, params, reply.status_code, reply.text[:300])
        body = reply.json if reply.headers["content-type"].startswith("application/json") else None
        text = body["error"] if body else reply.text
        assert any(name in text for name in params), (path, params, text)
        if "format" not in params:
            html = c.simulate_get(path, params=params)
            assert html.status_code == 400 and 'class="message"' in html.text, (path, params)
