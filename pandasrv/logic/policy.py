"""Who may submit and who may fetch each ``prodSourceLabel``, and which job fields a user may set: one table.

Every other place (submission, getJob, the Watcher's user timeouts, the docs table in ``docs/api.md``)
reads these rules from here, so the label rules cannot drift apart. The job owner is never in the
table: it is always the authenticated caller (``prodUserID``/``prodUserName`` are overwritten on submit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "pilot", "production"]
StatisticsType = Literal["production", "analysis"]

ROLE_TEXT = {"user": "any identified user", "pilot": "pilot or production role", "production": "production role"}
FETCH_ROLE: Role = "pilot"
# getJob requests an identified caller without the pilot role may make; they receive only their own jobs
OWN_JOB_REQUESTS = ("user",)
DEFAULT_REQUEST = "managed"  # getJob without prodSourceLabel


@dataclass(frozen=True)
class LabelRule:
    """One job label: who may submit it, whether it is an analysis job, which getJob requests receive it."""

    label: str
    submit: Role
    analysis: bool
    served_to: tuple[str, ...]
    meaning: str
    # which ``statistics/job_stats_by_cloud`` type counts it: PanDA's own lists there, which put the analysis
    # test labels with production and leave install, rucio_test and unified out
    statistics: StatisticsType | None = None


LABELS: tuple[LabelRule, ...] = (
    LabelRule("user", "user", True, ("user", "unified"), "analysis job", "analysis"),
    LabelRule("panda", "user", True, ("user", "unified"), "analysis job (old client name)", "analysis"),
    LabelRule("ptest", "user", True, ("ptest",), "analysis pilot test", "production"),
    LabelRule("rc_test", "user", True, ("rc_test",), "release-candidate test (analysis)", "production"),
    LabelRule("rc_test2", "user", True, ("rc_test2",), "release-candidate test (analysis)", "production"),
    LabelRule("rc_alrb", "user", True, ("rc_alrb",), "ALRB release-candidate test (analysis)", "production"),
    LabelRule("managed", "production", False, ("managed", "unified"), "production job", "production"),
    LabelRule("test", "production", False, ("managed", "test", "unified"), "production test job", "production"),
    LabelRule("prod_test", "production", False, ("managed", "test", "unified"), "production test job", "production"),
    LabelRule("install", "production", False, ("managed", "user", "test", "unified"), "software installation"),
    LabelRule("rucio_test", "production", False, ("rucio_test",), "data-management test"),
    LabelRule("unified", "production", False, ("unified",), "job for a unified (production + analysis) queue"),
)
RULES: dict[str, LabelRule] = {rule.label: rule for rule in LABELS}
ANALYSIS_LABELS: tuple[str, ...] = tuple(rule.label for rule in LABELS if rule.analysis)
REQUEST_LABELS: tuple[str, ...] = tuple(dict.fromkeys(r for rule in LABELS for r in rule.served_to))


def statistics_labels(kind: StatisticsType) -> tuple[str, ...]:
    """The job labels that ``statistics/job_stats_by_cloud?type=kind`` counts."""
    return tuple(rule.label for rule in LABELS if rule.statistics == kind)


def label_set(request: str | None) -> tuple[str, ...]:
    """The job labels a getJob request with ``prodSourceLabel=request`` receives (empty for unknown ones)."""
    wanted = request or DEFAULT_REQUEST
    return tuple(rule.label for rule in LABELS if wanted in rule.served_to)


def may_submit(label: str, *, identified: bool, production: bool) -> bool:
    rule = RULES.get(label)
    if rule is None or not identified:
        return False
    return rule.submit == "user" or production


def fetch_scope(request: str | None, *, identified: bool, pilot: bool) -> Literal["all", "own"] | None:
    """What a getJob request may receive: every matching job (pilot role), only the caller's own jobs
    (identified caller, ``OWN_JOB_REQUESTS``), or nothing (None)."""
    if pilot:
        return "all"
    if identified and request in OWN_JOB_REQUESTS:
        return "own"
    return None


def may_fetch(label: str, request: str | None, *, identified: bool, pilot: bool, owner: bool) -> bool:
    """Whether a job with ``label`` can reach this caller through a getJob request ``request``."""
    scope = fetch_scope(request, identified=identified, pilot=pilot)
    if scope is None or label not in label_set(request):
        return False
    return scope == "all" or owner


# --- job fields a user may set --------------------------------------------------------------------------

# Columns only the server (or a production client such as JEDI) sets; a user's value is replaced.
SERVER_FIELDS = ("specialHandling", "commandToPilot", "lockedby")
USER_PRIORITY_RANGE = (-1_000_000, 1000)  # a user's currentPriority/assignedPriority is clamped into this


def user_priority(value: int | None) -> int | None:
    if value is None:
        return None
    low, high = USER_PRIORITY_RANGE
    return max(low, min(high, int(value)))


def user_working_group(requested: str | None, vo: str | None, groups: tuple[str, ...]) -> str | None:
    """A user's workingGroup is kept only when one of the caller's FQAN groups is ``<vo>/<workingGroup>``."""
    if not requested or not vo:
        return None
    return requested if f"{vo}/{requested}" in groups else None


def label_table_markdown() -> str:
    """The label table of docs/api.md, rendered from ``LABELS`` (a test keeps the doc equal to this)."""
    lines = ["| prodSourceLabel | Meaning | Who may submit | getJob requests that receive it | Analysis |",
             "|---|---|---|---|---|"]
    for rule in LABELS:
        requests = ", ".join(f"`{r}`" for r in rule.served_to)
        lines.append(f"| `{rule.label}` | {rule.meaning} | {ROLE_TEXT[rule.submit]} | {requests} | "
                     f"{'yes' if rule.analysis else 'no'} |")
    return "\n".join(lines) + "\n"
