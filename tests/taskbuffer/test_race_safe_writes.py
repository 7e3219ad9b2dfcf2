"""Writes that two requests can make at once: identical concurrent calls all succeed, and one row remains.

Each case starts several sessions (one DBProxy each, already connected), releases them together with a
barrier and repeats for a few rounds of new and existing keys. A DELETE-then-INSERT or an
update-else-insert fails these with a duplicate key on PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as _dt
import threading
from typing import Any, Callable

import pytest

from pandasrv.clock import utcnow
from pandasrv.logic.heartbeat import Heartbeat
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.wrapped_cursor import connect
from tests.taskbuffer.test_db_proxy import make_job

N_SESSIONS = 4
ROUNDS = 6


def _session(barrier: threading.Barrier, call: Callable[[DBProxy, int, int], Any], proxy: DBProxy, round_: int,
             session: int, outcome: list[Any], errors: list[BaseException]) -> None:
    barrier.wait()
    try:
        outcome[session] = call(proxy, round_, session)
    except BaseException as exc:  # noqa: BLE001 - reported by the caller's assertion
        errors.append(exc)


def race(db_url: str, call: Callable[[DBProxy, int, int], Any], rounds: int = ROUNDS) -> list[list[Any]]:
    """Run ``call(proxy, round, session)`` in N_SESSIONS threads at once, ``rounds`` times; the results
    per round. Any exception in a session fails the test with that exception."""
    proxies = [DBProxy(db_url) for _ in range(N_SESSIONS)]
    assert all(proxy.ping() for proxy in proxies)
    results: list[list[Any]] = []
    try:
        for round_ in range(rounds):
            barrier = threading.Barrier(N_SESSIONS)
            outcome: list[Any] = [None] * N_SESSIONS
            errors: list[BaseException] = []
            threads = [threading.Thread(target=_session, args=(barrier, call, proxies[i], round_, i, outcome, errors))
                       for i in range(N_SESSIONS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == [], f"round {round_}: {errors[0]!r}"
            results.append(outcome)
    finally:
        for proxy in proxies:
            proxy.close()
    return results


@pytest.mark.parametrize("shared_key", [True, False], ids=["same-key", "own-keys"])
def test_set_config_value_races(db_url, shared_key):
    def call(proxy: DBProxy, round_: int, session: int) -> None:
        key = "k" if shared_key else f"k{session}"
        proxy.set_config_value("pilot", "SITE", f"{key}-{round_ // 2}", f"v{round_}-{session}")

    race(db_url, call)
    proxy = DBProxy(db_url)
    values = proxy.get_config_values("pilot", "SITE")
    proxy.close()
    keys = [f"k-{r}" for r in range(ROUNDS // 2)] if shared_key else \
        [f"k{s}-{r}" for s in range(N_SESSIONS) for r in range(ROUNDS // 2)]
    assert sorted(values) == sorted(keys)
    # Every key holds a value one of the sessions wrote in the key's last round: never a mix or a loss.
    for key, value in values.items():
        last_round = int(key.rsplit("-", 1)[1]) * 2 + 1
        assert value.startswith(f"v{last_round}-")


def test_register_sandbox_file_races(db_url):
    def call(proxy: DBProxy, round_: int, session: int) -> None:
        proxy.register_sandbox_file(f"sources.{round_ // 2}.tgz", 100 + session, f"crc{session}", "host", "/CN=a")

    race(db_url, call)
    conn = connect(db_url)
    rows = conn.cursor().execute("SELECT fileName, fileSize, checksum FROM sandbox_files").fetchall()
    conn.close()
    assert sorted(name for name, _, _ in rows) == [f"sources.{r}.tgz" for r in range(ROUNDS // 2)]
    assert all(checksum == f"crc{size - 100}" for _, size, checksum in rows)  # one writer's row, never a mix


def test_update_site_starts_races(db_url):
    proxy = DBProxy(db_url)
    since = utcnow() - _dt.timedelta(hours=1)
    sites = [f"QUEUE_{i}" for i in range(ROUNDS)]
    for i, site in enumerate(sites):
        ids = proxy.insert_jobs([make_job(f"j{site}{n}", site=site) for n in range(i + 1)], status="activated")
        for panda_id in ids:
            assert proxy.claim_jobs(ClaimRequest(site=site, labels=("managed",), node="wn"))
            assert proxy.update_job(Heartbeat(panda_id, "running", {"startTime": utcnow()}))["result"] == "ok"

    def call(p: DBProxy, round_: int, session: int) -> dict[str, Any]:
        return p.update_site_starts(since, utcnow())

    for outcome in race(db_url, call, rounds=2):
        for counts in outcome:
            assert {site: n for site, (n, _) in counts.items()} == {site: i + 1 for i, site in enumerate(sites)}
    stored = proxy.monitor_site_data()
    proxy.close()
    assert {site: stored[site]["nStart"] for site in sites} == {site: i + 1 for i, site in enumerate(sites)}


def test_record_daemon_run_races(db_url):
    start = utcnow()

    def call(proxy: DBProxy, round_: int, session: int) -> None:
        proxy.record_daemon_run("add_sub", "host", start, start + _dt.timedelta(seconds=round_), f"ok{session}")

    race(db_url, call)
    proxy = DBProxy(db_url)
    runs = proxy.daemon_runs()
    proxy.close()
    assert [(run["script"], run["host"]) for run in runs] == [("add_sub", "host")]
    assert runs[0]["endTime"] == start + _dt.timedelta(seconds=ROUNDS - 1)
