"""The pure parts of bench/capacity.py: the access log's durations, wrk's report, /proc's VmRSS."""

from __future__ import annotations

import pytest

from bench.capacity import access_durations, parse_wrk, vm_rss_mb

LOG = """\
2026-12-04 14:58:56,890 25747 pandasrv.access INFO POST panda getJob caller=pandasrv status=200 time=4.2ms
2026-12-04 14:58:56,891 25747 pandasrv.access INFO POST panda updateJob caller=pandasrv status=200 time=9.0ms
2026-12-04 14:58:56,892 25747 pandasrv.access INFO POST panda getJob caller=pandasrv status=503 time=0.1ms
2026-12-04 14:58:56,893 25747 pandasrv.web.server INFO getJob caller=x status=200 time=7.0ms
2026-12-04 14:58:56,894 25747 pandasrv.access INFO GET panda getJob caller=- status=200 time=12.5ms
"""

WRK = """\
Running 4s test @ http://127.0.0.1:40123
  2 threads and 6 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    20.31ms    5.12ms  61.02ms   80.00%
    Req/Sec   148.22     20.11   190.00     70.00%
  1187 requests in 4.01s, 1.23MB read
  Non-2xx or 3xx responses: 12
Requests/sec:    296.01
Transfer/sec:    313.57KB
"""


def test_access_durations_are_the_successful_calls_of_the_method_in_seconds() -> None:
    assert access_durations(LOG.splitlines()) == [pytest.approx(0.0042), pytest.approx(0.0125)]
    assert access_durations(LOG.splitlines(), "updateJob") == [pytest.approx(0.009)]
    assert access_durations(["garbage", ""]) == []


def test_wrk_report_counts_failures_out_of_the_rate() -> None:
    result = parse_wrk(WRK)
    assert (result.requests, result.seconds, result.failed) == (1187, pytest.approx(4.01), 12)
    assert result.rate == pytest.approx(1175 / 4.01)
    errors = WRK.replace("  Non-2xx or 3xx responses: 12\n",
                         "  Socket errors: connect 1, read 2, write 0, timeout 3\n").replace("in 4.01s", "in 1.00m")
    assert (parse_wrk(errors).failed, parse_wrk(errors).seconds) == (6, 60.0)
    with pytest.raises(ValueError, match="not a wrk report"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_vm_rss_in_megabytes() -> None:
    assert vm_rss_mb("Name:\tgunicorn\nVmRSS:\t   51200 kB\nVmSwap:\t0 kB\n") == pytest.approx(52.4288)
    with pytest.raises(ValueError):
        vm_rss_mb("Name:\tzombie\n")
