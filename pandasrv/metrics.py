"""Prometheus metrics of every pandasrv process (web workers, daemon workers), one leaf module all layers use.

Under ``pandasrv serve`` the metrics are in prometheus-client's multiprocess mode: each process writes its
values to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds them up, so the numbers are right
across W gunicorn workers and include the daemon workers started alongside. ``prepare_multiprocess_dir``
must run before this module is first imported (the library chooses its value storage at import time).
Names follow the Prometheus conventions: ``pandasrv_`` prefix, ``_total`` counters, ``_seconds`` durations.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SLOW = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

HTTP_REQUESTS = Counter("pandasrv_http_requests_total", "HTTP requests served, by API method and HTTP status.",
                        ("method", "status"))
HTTP_DURATION = Histogram("pandasrv_http_request_duration_seconds", "Time to serve a request, by API method.",
                          ("method",), buckets=_FAST)

JOBS_DISPATCHED = Counter("pandasrv_jobs_dispatched_total", "Jobs handed out to pilots (getJob and job/acquire).")
EMPTY_CLAIMS = Counter("pandasrv_job_claims_empty_total", "Job requests of pilots that found no job to hand out.")
HEARTBEATS = Counter("pandasrv_heartbeats_total", "Pilot heartbeats and final reports applied, by reported state.",
                     ("state",))

POOL_WAIT = Histogram("pandasrv_db_pool_wait_seconds", "Time a thread waited for a free DB proxy.", buckets=_FAST)
POOL_TIMEOUTS = Counter("pandasrv_db_pool_timeouts_total", "Checkouts that found no free DB proxy within db_pool_wait.")
POOL_CHECKOUT = Histogram("pandasrv_db_pool_checkout_seconds", "Time a DB proxy was held per checkout.",
                          buckets=_FAST)
CONBRIDGE_CALLS = Counter("pandasrv_conbridge_calls_total", "Calls across a ConBridge to its child process.")
CONBRIDGE_TIMEOUTS = Counter("pandasrv_conbridge_timeouts_total", "ConBridge calls killed after db_timeout.")
CONBRIDGE_RESTARTS = Counter("pandasrv_conbridge_child_restarts_total",
                             "ConBridge children started again after one was killed or died.")

DAEMON_RUNS = Counter("pandasrv_daemon_script_runs_total", "Daemon script runs, by script and result (ok, error, retry).",
                      ("script", "result"))
DAEMON_FAILURES = Counter("pandasrv_daemon_script_failures_total", "Daemon script runs that raised.", ("script",))
DAEMON_DURATION = Histogram("pandasrv_daemon_script_duration_seconds", "Duration of daemon script runs.",
                            ("script",), buckets=_SLOW)
LEASE_ACQUISITIONS = Counter("pandasrv_daemon_lease_acquisitions_total",
                             "Leases of sync scripts taken by this machine's daemon.", ("script",))
LEASE_TAKEOVERS = Counter("pandasrv_daemon_lease_takeovers_total",
                          "Leases taken over from another machine whose lease had expired.", ("script",))
