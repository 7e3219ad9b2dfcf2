"""bench/report.py, the writer of `make bench`'s report, on synthetic sections: one that measured, one that raises
and one whose module is missing. The report must name the failures, keep the others' figures, draw the plots and
exit non-zero. No timing is measured or asserted here."""

from __future__ import annotations

import json
import sys
import types
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from bench import report
from bench.figures import Figure, RunOptions, Section, Series


def measured(options: RunOptions) -> Section:
    return Section(
        title="Synthetic rates",
        figures=[
            Figure("getJob", "jobs/s", [500.0, 520.0, 540.0], reference="minimal claim app",
                   reference_samples=[900.0, 1000.0, 1100.0], target=0.75, note="16 connections"),
            Figure("submit", "jobs/s", [float(options.repeats) * 3000] * 3, target=6000.0),
            Figure("worker RSS", "MB", [70.0, 72.0, 90.0], target=80.0, higher_is_better=False),
            Figure("hello ceiling", "req/s", [9000.0]),
        ],
        series=[Series("getJob", "archived jobs", "jobs/s", [(0, 500.0), (100_000, 495.0), (1_000_000, 480.0)]),
                Series("heartbeat", "archived jobs", "jobs/s", [(0, 700.0), (1_000_000, 690.0)]),
                Series("getJob", "W", "jobs/s", [(1, 300.0), (2, 520.0), (4, 540.0)])],
        notes=["a note of the section"],
    )


def broken(options: RunOptions) -> Section:
    raise RuntimeError("the server did not come up")


@pytest.fixture
def sections(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, function in (("bench.synthetic_ok", measured), ("bench.synthetic_broken", broken)):
        module = types.ModuleType(name)
        module.section = function  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, name, module)


def test_report_of_good_failing_and_missing_sections(sections: None, tmp_path: Path) -> None:
    code = report.main(["--quick", "--repeats", "2", "--out", str(tmp_path), "--section", "synthetic_ok",
                        "--section", "synthetic_broken", "--section", "bench.no_such_section"])
    assert code == 1

    md = (tmp_path / "report.md").read_text()
    assert "| Synthetic rates | getJob | jobs/s | 3 | 520 | 520 | 540 | minimal claim app | 1,000 | 0.52 | ≥ 0.75 × |" \
           " **no** |" in md
    assert "| Synthetic rates | submit | jobs/s | 3 | 6,000 | 6,000 | 6,000 | — | — | — | ≥ 6,000 | yes |" in md
    assert "| Synthetic rates | worker RSS | MB | 3 | 72 | 72 | 90 | — | — | — | ≤ 80 | yes |" in md
    assert "| hello ceiling | req/s | 1 | 9,000 | 9,000 | 9,000 | — | — | — | — | — |" in md
    assert "| bench.synthetic_broken | **failed** |" in md
    assert "RuntimeError: the server did not come up" in md
    assert "module bench.no_such_section not found" in md
    assert "quick mode, 2 repeats, backend postgresql" in md
    for fact in ("CPUs:", "load average", "kernel", "PostgreSQL:", "MariaDB:", "packages: pandasrv", "commit"):
        assert fact in md
    assert "- getJob: 16 connections" in md and "- a note of the section" in md

    data = json.loads((tmp_path / "report.json").read_text())
    assert [s["status"] for s in data["sections"]] == ["ok", "failed", "failed"]
    ok = data["sections"][0]
    assert ok["figures"][0]["ratio"] == pytest.approx(0.52) and ok["figures"][0]["met"] is False
    assert ok["figures"][1]["met"] is True and ok["figures"][3]["met"] is None
    assert "RuntimeError" in data["sections"][1]["error"]
    assert data["machine"]["cpus"] and len(data["machine"]["load_after"]) == 3
    assert data["options"] == {"quick": True, "repeats": 2, "backend": "postgresql"}

    plots = sorted(data["plots"])
    assert plots == ["report-jobs-s-vs-archived-jobs.svg", "report-jobs-s-vs-w.svg"]
    for name in plots:
        assert f"![{name[:-4]}]({name})" in md
        root = ElementTree.parse(tmp_path / name).getroot()
        lines = root.findall("{http://www.w3.org/2000/svg}polyline")
        assert len(lines) == (2 if "archived" in name else 1)


def test_a_full_run_by_environment(monkeypatch: pytest.MonkeyPatch, sections: None, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCH_FULL", "1")
    assert report.main(["--out", str(tmp_path), "--section", "synthetic_ok"]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["options"]["quick"] is False and data["options"]["repeats"] == report.FULL_REPEATS
    assert data["sections"][0]["figures"][1]["samples"] == [report.FULL_REPEATS * 3000.0] * 3


def test_the_section_list_names_modules_of_bench() -> None:
    assert report.SECTIONS[0] == "bench.api_rates"
    assert all(name.startswith("bench.") for name in report.SECTIONS)
