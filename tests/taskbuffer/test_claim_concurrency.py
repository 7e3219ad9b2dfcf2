"""Concurrency across processes: every job is claimed exactly once; a lease has exactly one holder."""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter
from typing import Any

import pytest

from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.db_proxy import DBProxy
from tests.taskbuffer.test_db_proxy import make_job

N_JOBS = 3000
N_CLAIMERS = 6


def claim_until_empty(db_url: str, seed: int, start: Any, results: Any) -> None:
    """One claimer process: claim batches of 1-5 jobs until nothing is left to claim."""
    rng = random.Random(seed)
    proxy = DBProxy(db_url)
    proxy.ping()
    claimed: list[int] = []
    start.wait()
    while jobs := proxy.claim_jobs(ClaimRequest(site="SITE", labels=("managed",), n=rng.randint(1, 5), node=f"claimer-{seed}")):
        claimed += [job.PandaID for job in jobs]
    proxy.close()
    results.put(claimed)


@pytest.mark.slow
def test_every_job_is_claimed_exactly_once(db_url):
    proxy = DBProxy(db_url)
    jobs = [make_job(f"j{i}", priority=i % 17) for i in range(N_JOBS)]
    expected = set(proxy.insert_jobs(jobs, status="activated"))

    context = multiprocessing.get_context("forkserver")
    start, queue = context.Event(), context.Queue()
    claimers = [context.Process(target=claim_until_empty, args=(db_url, seed, start, queue)) for seed in range(N_CLAIMERS)]
    for claimer in claimers:
        claimer.start()
    start.set()  # all connected or connecting: they race from here
    results = [queue.get(timeout=240) for _ in claimers]
    for claimer in claimers:
        claimer.join()

    claims = Counter(panda_id for claimed in results for panda_id in claimed)
    assert [panda_id for panda_id, count in claims.items() if count > 1] == []
    assert set(claims) == expected
    statuses = proxy.get_job_status(sorted(expected))
    assert {status for status, _, _ in statuses.values()} == {"sent"}
    proxy.close()


def try_lease(db_url: str, owner: str) -> bool:
    proxy = DBProxy(db_url)
    try:
        return proxy.acquire_lease("copy_archive", owner, 60)
    finally:
        proxy.close()


def test_one_lease_holder_among_concurrent_takers(db_url):
    context = multiprocessing.get_context("forkserver")
    owners = [f"host-{i}" for i in range(N_CLAIMERS)]
    with context.Pool(N_CLAIMERS) as pool:
        taken = pool.starmap(try_lease, [(db_url, owner) for owner in owners])
    assert taken.count(True) == 1
    winner = owners[taken.index(True)]
    proxy = DBProxy(db_url)
    assert proxy.renew_lease("copy_archive", winner, 60) is True
    assert all(proxy.renew_lease("copy_archive", owner, 60) is False for owner in owners if owner != winner)
    proxy.close()
