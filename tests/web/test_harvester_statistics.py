"""What Harvester reads to size its pilot demand: the statistics replies in the real server's shapes, and
the standard resource types that ``db init`` seeds (editable with ``pandasrv resource-type``)."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from pandasrv.cli import main
from pandasrv.config import load_settings
from pandasrv.taskbuffer.schema import STANDARD_RESOURCE_TYPES
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from pandasrv.web.user_if import resource_type_of
from tests.web.helpers import make_job, submit, submit_activated, v1, wait_status

USUAL = {"assigned": 0, "activated": 0, "running": 0}


def test_active_job_stats_have_the_real_shapes_and_zeros(server, fresh_queue):
    submit_activated(server, fresh_queue, 2)
    (mcore,) = submit(server.url, [make_job(fresh_queue, "mc", coreCount=8, minRamCount=16000)])
    wait_status(server.tb, [mcore], "activated")
    detailed = v1(server.url, "statistics/active_job_detailed_stats_by_site", method="GET")
    assert detailed["success"] and detailed["message"] == ""
    assert detailed["data"][fresh_queue] == {"SCORE": {"user": {**USUAL, "activated": 2}},
                                             "MCORE": {"user": {**USUAL, "activated": 1}}}
    # every innermost value is a {status: n} map: Harvester's worker adjuster iterates them with .items()
    for per_type in detailed["data"].values():
        for per_label in per_type.values():
            for per_status in per_label.values():
                assert all(isinstance(n, int) for n in per_status.values())
    by_site = v1(server.url, "statistics/active_job_stats_by_site", method="GET")["data"]
    assert by_site[fresh_queue] == {**USUAL, "activated": 3}
    server.tb.kill_jobs([mcore], user="x", is_production=True)
    per_type = v1(server.url, "statistics/job_stats_by_site_and_resource_type", {"time_window": 60}, method="GET")
    assert per_type["data"][fresh_queue]["MCORE"] == {**USUAL, "finished": 0, "failed": 0, "cancelled": 1}
    shares = v1(server.url, "statistics/job_stats_by_site_share_and_resource_type", method="GET")["data"]
    assert shares[fresh_queue]["user"]["SCORE"]["activated"] == 2


@pytest.mark.parametrize("window", ["-1", "10081"])
def test_statistics_refuse_bad_time_windows(server, window):
    for path in ("statistics/job_stats_by_site_and_resource_type",
                 "statistics/job_stats_by_site_share_and_resource_type"):
        body = v1(server.url, path, {"time_window": window}, method="GET")
        assert body["success"] is False and "time_window" in body["message"] and body["data"] == {}


def test_job_stats_by_cloud_types(server):
    assert v1(server.url, "statistics/job_stats_by_cloud", {"type": "analysis"}, method="GET")["success"]
    bad = v1(server.url, "statistics/job_stats_by_cloud", {"type": "other"}, method="GET")
    assert bad["success"] is False and "type" in bad["message"]
    assert httpx.post(f"{server.url}/api/v1/statistics/job_stats_by_cloud", json={}).json()["success"] is False


def test_fresh_database_has_the_standard_resource_types(server):
    types = v1(server.url, "metaconfig/get_resource_types", method="GET")["data"]
    assert {t["resource_name"]: (t["mincore"], t["maxcore"], t["minrampercore"], t["maxrampercore"]) for t in types} \
        == {name: tuple(bounds) for name, *bounds in STANDARD_RESOURCE_TYPES}


@pytest.mark.parametrize("cores,ram,expected", [(None, None, "SCORE"), (1, 2000, "SCORE"), (1, 4000, "SCORE_HIMEM"),
                                                (8, 16000, "MCORE"), (8, 32000, "MCORE_HIMEM"), (0, 0, "SCORE")])
def test_resource_type_of_a_job(cores, ram, expected):
    types = [dict(zip(("resource_name", "mincore", "maxcore", "minrampercore", "maxrampercore"), t))
             for t in STANDARD_RESOURCE_TYPES]
    assert resource_type_of(cores, ram, types) == expected


def test_resource_types_are_editable_with_the_cli(db_url):
    runner = CliRunner()
    base = ["resource-type"]
    assert runner.invoke(main, [*base, "set", "GPU", "--min-core", "1", "--max-core", "4", "--db", db_url]).exit_code == 0
    assert runner.invoke(main, [*base, "set", "SCORE", "--min-core", "1", "--max-core", "1",
                                "--max-ram-per-core", "2500", "--db", db_url]).exit_code == 0
    listed = runner.invoke(main, [*base, "list", "--db", db_url]).output
    assert "GPU\tcores=1..4\tram_per_core=-..-" in listed and "SCORE\tcores=1..1\tram_per_core=-..2500" in listed
    assert runner.invoke(main, [*base, "remove", "GPU", "--db", db_url]).exit_code == 0
    missing = runner.invoke(main, [*base, "remove", "GPU", "--db", db_url])
    assert missing.exit_code == 1 and "no resource type" in missing.output
    tb = TaskBuffer(load_settings(db_url=db_url, db_bridge=False, db_connections=1))
    try:
        assert sorted(t["resource_name"] for t in tb.get_resource_types()) == sorted(n for n, *_ in STANDARD_RESOURCE_TYPES)
    finally:
        tb.close()
