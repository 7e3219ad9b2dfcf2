"""The pure parts of bench/capacity.py: the access log's durations, a run's failures, /proc's VmRSS."""

from __future__ import annotations

import pytest

from bench.capacity import access_durations, failures, vm_rss_mb
from bench.loadgen import WrkRun

LOG = """\
2026-12-04 14:58:56,890 25747 pandasrv.access INFO POST panda getJob caller=pandasrv status=200 time=4.2ms
2026-12-04 14:58:56,891 25747 pandasrv.access INFO POST panda updateJob caller=pandasrv status=200 time=9.0ms
2026-12-04 14:58:56,892 25747 pandasrv.access INFO POST panda getJob caller=pandasrv status=503 time=0.1ms
2026-12-04 14:58:56,893 25747 pandasrv.web.server INFO getJob caller=x status=200 time=7.0ms
2026-12-04 14:58:56,894 25747 pandasrv.access INFO GET panda getJob caller=- status=200 time=12.5ms
"""

def test_access_durations_are_the_successful_calls_of_the_method_in_seconds() -> None:
    assert access_durations(LOG.splitlines()) == [pytest.approx(0.0042), pytest.approx(0.0125)]
    assert access_durations(LOG.splitlines(), "updateJob") == [pytest.approx(0.009)]
    assert access_durations(["garbage", ""]) == []


def test_failures_are_sheds_refusals_and_socket_errors() -> None:
    run = WrkRun(seconds=3.0, requests=100, ok=80, shed=7, failed=2, empty=0, socket_errors=1, p50_ms=1, p95_ms=2)
    assert failures(run) == 10


def test_vm_rss_in_megabytes() -> None:
    assert vm_rss_mb("Name:\tgunicorn\nVmRSS:\t   51200 kB\nVmSwap:\t0 kB\n") == pytest.approx(52.4288)
    with pytest.raises(ValueError):
        vm_rss_mb("Name:\tzombie\n")
