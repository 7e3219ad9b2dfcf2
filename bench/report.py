"""`make bench`: run every benchmark section and write one report, bench/report.md and bench/report.json.

    .venv/bin/python -m bench.report                 # quick: the whole report in under 5 minutes
    .venv/bin/python -m bench.report --full          # longer runs, more repeats (make bench-full, BENCH_FULL=1)
    .venv/bin/python bench/report.py --section api_rates --repeats 1

Each section is a module of bench/ with ``section(options: RunOptions) -> Section`` (see bench/figures.py).
A section that cannot be imported or that raises is reported as failed, with its error, and the others still
run; the exit code is then 1. The report starts with the machine (its load before and after: a shared
machine's figures need it), then one summary table of every figure against its same-run reference and its
target, then the sections' notes, and links the plots (SVG, one per pair of axes, next to the report).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a fresh clone, not only with -m
    sys.path.insert(0, str(ROOT))

from bench.figures import Figure, RunOptions, Section  # noqa: E402
from bench.plots import write_plots  # noqa: E402

# The sections of `make bench`, in the order they run. A module named here that is not there is a failed
# section in the report (so a section that was removed or not merged yet cannot pass unnoticed).
SECTIONS: tuple[str, ...] = ("bench.api_rates", "bench.capacity", "bench.history", "bench.overload")
PACKAGES = ("pandasrv", "falcon", "gunicorn", "psycopg", "psycopg-binary", "PyMySQL", "SQLAlchemy", "pydantic",
            "httpx")
QUICK_REPEATS, FULL_REPEATS = 3, 5
QUICK_BUDGET_SECONDS = 300


@dataclass
class Outcome:
    """What running one section gave: its Section, or the error that stopped it."""

    module: str
    seconds: float
    section: Section | None = None
    error: str | None = None

    @property
    def title(self) -> str:
        return self.section.title if self.section else self.module


def run_section(module: str, options: RunOptions) -> Outcome:
    started = time.monotonic()
    try:
        found = importlib.import_module(module)
        entry: Callable[[RunOptions], Section] | None = getattr(found, "section", None)
        if entry is None:
            raise AttributeError(f"{module} has no section(options) function")
        result = entry(options)
        if not isinstance(result, Section):
            raise TypeError(f"{module}.section returned {type(result).__name__}, not a Section")
        return Outcome(module, time.monotonic() - started, section=result)
    except ModuleNotFoundError as exc:
        error = f"module {exc.name} not found" if exc.name == module else traceback.format_exc()
        return Outcome(module, time.monotonic() - started, error=error)
    except Exception:  # noqa: BLE001 - a failing section is reported; the others still run
        return Outcome(module, time.monotonic() - started, error=traceback.format_exc())


# --- machine facts -----------------------------------------------------------------------------------------

def _command(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _server_version(backend: str) -> str:
    from bench.databases import ADMIN_DATABASE, SERVERS
    from pandasrv.taskbuffer.wrapped_cursor import connect

    try:
        conn = connect(f"{SERVERS[backend]}/{ADMIN_DATABASE[backend]}")
        try:
            cur = conn.cursor()
            cur.execute("SELECT version()")
            row = cur.fetchone()
            return str(row[0]) if row else "unknown"
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - a server that is down is a fact of the report, not a crash
        return f"unavailable ({type(exc).__name__}: {exc})"


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_facts() -> dict[str, Any]:
    """The machine, versions and commit; the load average is taken again after the run (``load_after``)."""
    dirty = _command("git", "status", "--porcelain", "--untracked-files=no")
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_before": list(os.getloadavg()),
        "postgresql": _server_version("postgresql"),
        "mariadb": _server_version("mysql"),
        "wrk": _command("wrk", "-v") or "not installed",
        "packages": _package_versions(),
        "commit": _command("git", "rev-parse", "HEAD"),
        "dirty": bool(dirty) and not dirty.startswith("unavailable"),
    }


# --- writing -----------------------------------------------------------------------------------------------

def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _target(figure: Figure) -> str:
    if figure.target is None:
        return "—"
    sign = "≥" if figure.higher_is_better else "≤"
    return f"{sign} {figure.target:g} ×" if figure.reference_samples else f"{sign} {_number(figure.target)}"


def _met(figure: Figure) -> str:
    return {True: "yes", False: "**no**", None: "—"}[figure.met]


def summary_rows(outcomes: Sequence[Outcome]) -> list[str]:
    rows = ["| section | figure | unit | n | median | p50 | p95 | reference | ref. median | ratio | target | met |",
            "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|---|"]
    for outcome in outcomes:
        if outcome.section is None:
            rows.append(f"| {outcome.module} | **failed** | | | | | | | | | | |")
            continue
        for f in outcome.section.figures:
            ratio = f"{f.ratio:.2f}" if f.ratio is not None else "—"
            rows.append(f"| {outcome.title} | {f.name} | {f.unit} | {len(f.samples)} | {_number(f.median)} | "
                        f"{_number(f.median)} | {_number(f.p95)} | {f.reference or '—'} | "
                        f"{_number(f.reference_median)} | {ratio} | {_target(f)} | {_met(f)} |")
    return rows


def markdown(outcomes: Sequence[Outcome], facts: dict[str, Any], options: RunOptions, plots: Sequence[Path]) -> str:
    mode = "quick" if options.quick else "full"
    over = options.quick and facts["seconds"] > QUICK_BUDGET_SECONDS
    load = " → ".join(" ".join(f"{x:.2f}" for x in facts[key]) for key in ("load_before", "load_after"))
    lines = [
        "# pandasrv benchmark report", "",
        f"{facts['date']}, {mode} mode, {options.repeats} repeats, backend {options.backend}, "
        f"{facts['seconds']:.0f} s{' (over the quick budget of 5 minutes)' if over else ''}.", "",
        "## Machine", "",
        f"- CPUs: {facts['cpus']} × {facts['cpu_model']}",
        f"- load average (1, 5, 15 min) before → after: {load}",
        f"- kernel {facts['kernel']}, Python {facts['python']}",
        f"- PostgreSQL: {facts['postgresql']}",
        f"- MariaDB: {facts['mariadb']}",
        f"- load generator: {facts['wrk']}",
        "- packages: " + ", ".join(f"{name} {version}" for name, version in facts["packages"].items()),
        f"- commit {facts['commit']}{' (dirty tree)' if facts['dirty'] else ''}", "",
        "## Summary", "",
        "Medians over the repeats; the reference is measured in the same run (interleaved with the figure) and "
        "the ratio is median over reference median. A target with × is a ratio, otherwise an absolute value.", "",
        *summary_rows(outcomes), "",
    ]
    if plots:
        lines += ["## Plots", "", *(f"![{path.stem}]({path.name})" for path in plots), ""]
    lines += ["## Sections", ""]
    for outcome in outcomes:
        status = "ok" if outcome.section else "FAILED"
        lines += [f"### {outcome.title} ({outcome.module}: {status}, {outcome.seconds:.0f} s)", ""]
        if outcome.error:
            lines += ["```", outcome.error.rstrip(), "```", ""]
        if outcome.section:
            lines += [f"- {f.name}: {f.note}" for f in outcome.section.figures if f.note]
            lines += [f"- {note}" for note in outcome.section.notes]
            lines.append("")
    return "\n".join(lines)


def as_json(outcomes: Sequence[Outcome], facts: dict[str, Any], options: RunOptions,
            plots: Sequence[Path]) -> dict[str, Any]:
    sections = []
    for outcome in outcomes:
        entry: dict[str, Any] = {"module": outcome.module, "title": outcome.title, "seconds": outcome.seconds,
                                 "status": "ok" if outcome.section else "failed", "error": outcome.error}
        if outcome.section:
            entry.update(figures=[f.summary() for f in outcome.section.figures],
                         series=[asdict(s) for s in outcome.section.series], notes=outcome.section.notes)
        sections.append(entry)
    return {"options": asdict(options), "machine": facts, "sections": sections, "plots": [p.name for p in plots]}


def write_report(outcomes: Sequence[Outcome], facts: dict[str, Any], options: RunOptions, out_dir: Path) -> list[Path]:
    """Writes report.md, report.json and the plots into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("report-*.svg"):
        old.unlink()
    series = [s for outcome in outcomes if outcome.section for s in outcome.section.series]
    plots = write_plots(series, out_dir)
    (out_dir / "report.md").write_text(markdown(outcomes, facts, options, plots))
    (out_dir / "report.json").write_text(json.dumps(as_json(outcomes, facts, options, plots), indent=2) + "\n")
    return [out_dir / "report.md", out_dir / "report.json", *plots]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default (unless BENCH_FULL=1): under 5 minutes")
    mode.add_argument("--full", action="store_true", help="longer runs and more repeats")
    parser.add_argument("--repeats", type=int, help=f"default {QUICK_REPEATS} quick, {FULL_REPEATS} full")
    parser.add_argument("--backend", default="postgresql", choices=("postgresql", "mysql", "sqlite"))
    parser.add_argument("--section", action="append", metavar="NAME",
                        help="run only this section (bench.NAME); repeatable")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where report.md/json go (default bench/)")
    args = parser.parse_args(argv)
    full = args.full or (not args.quick and os.environ.get("BENCH_FULL", "") not in ("", "0"))
    options = RunOptions(quick=not full, repeats=args.repeats or (FULL_REPEATS if full else QUICK_REPEATS),
                         backend=args.backend)
    modules = [name if name.startswith("bench.") else f"bench.{name}" for name in args.section] if args.section \
        else list(SECTIONS)

    facts = machine_facts()
    started = time.monotonic()
    outcomes = []
    for module in modules:
        print(f"bench: {module} ...", flush=True)
        outcome = run_section(module, options)
        print(f"bench: {module} {'ok' if outcome.section else 'FAILED'} in {outcome.seconds:.0f} s", flush=True)
        if outcome.error:
            print(outcome.error, file=sys.stderr, flush=True)
        outcomes.append(outcome)
    facts.update(load_after=list(os.getloadavg()), seconds=time.monotonic() - started)
    written = write_report(outcomes, facts, options, args.out)
    print("\n".join(summary_rows(outcomes)))
    print("bench: wrote " + ", ".join(str(path) for path in written))
    return 1 if any(outcome.error for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
