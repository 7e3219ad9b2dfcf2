"""The fault soak (``bench/soak.py``) of issue 12 on PostgreSQL: 5,000 jobs through 16 retrying pilot emulators
while web workers and the daemon master get ``kill -9`` every few seconds and the database's sessions are killed
once. Nothing may be handed out twice, lost or left stuck, and no pilot may see a reply it cannot use.

It runs beside the other tests (5 minutes at a load average of 20 from other work): its bound is a stall, 2 minutes
without a finished job, not a pace, so a loaded machine makes it slower, not red. By hand, with the figures:
``.venv/bin/python bench/soak.py --jobs 5000 --kill-every 3`` (bench/README.md).
"""

from __future__ import annotations

import json

import pytest

from bench.soak import Options, healthy, run_soak
from tests.conftest import fresh_database


@pytest.mark.timeout(900)
def test_fault_soak(test_databases, tmp_path, backend="postgresql"):
    options = Options(jobs=5000, pilots=16, workers=4, threads=4, kill_every=3.0, db_kill_at=0.4, db_outage=1.0,
                      unconfirmed=10, settle=60.0, deadline=720.0, stall=120.0, workdir=tmp_path)
    with fresh_database(test_databases, backend, tmp_path, prefix="pandasrv_soak") as db_url:
        result = run_soak(db_url, options)
    print(json.dumps(result, indent=2))
    assert healthy(result), json.dumps(result, indent=2)
    assert result["tracebacks in the server log"] == 0, result["server log"]  # a fault is one line, not a traceback
    assert result["final states"] == {"finished": options.jobs}, result
    kills = result["kills"]
    assert kills.get("web worker", 0) >= 1 and kills.get("daemon master", 0) >= 1, kills
    assert kills["database outage"] == 1, kills
    assert result["deaths logged"] == {"daemon master": kills["daemon master"], "web worker": kills["web worker"]}, result
