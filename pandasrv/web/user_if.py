"""User-facing job calls: submit, describe, kill, reassign, debug; shared by the v1 and legacy forms.

Submission is the seed's asynchronous request: the jobs are validated as a whole (nothing is stored
if one is bad), stored as ``defined``, and the reply carries their PandaIDs at once; the Setupper runs
afterwards in a helper process and finds the jobs through the database.
"""

from __future__ import annotations

import datetime as _dt
import shlex
from typing import Any

from pandasrv.clock import utcnow
from pandasrv.logic import policy
from pandasrv.logic.constants import MAX_IDS
from pandasrv.logic.handover import start_setupper
from pandasrv.logic.policy import ROLE_TEXT, RULES, SERVER_FIELDS, may_submit, user_priority, user_working_group
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.web.auth import Identity, parse_fqan
from pandasrv.web.codecs import BadRequest, fail, loads_json, ok
from pandasrv.web.context import Call
from pandasrv.web.registry import endpoint

MAX_SUBMIT = 5000


def decode_job_states(text: Any, limit: int) -> list[JobSpec]:
    """The ``jobs`` JSON string of panda-client: a list of positional job states (bounded like the body)."""
    states = loads_json(text, limit, "jobs") if isinstance(text, str) else text
    if not isinstance(states, list):
        raise BadRequest("jobs must be a JSON list of job states")
    check_count(len(states))
    try:
        return [JobSpec.from_state(state) for state in states]
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"invalid job state: {exc}") from None


def check_count(n: int) -> None:
    if n == 0:
        raise BadRequest("No jobs were submitted")
    if n > MAX_SUBMIT:
        raise BadRequest(f"too many jobs in one submission: {n} > {MAX_SUBMIT}")


def check_ids(ids: Any) -> list[int]:
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise BadRequest("job ids must be a list of integers")
    if len(ids) > MAX_IDS:
        raise BadRequest(f"too many job ids: {len(ids)} > {MAX_IDS}")
    return ids


def submit_jobs(call: Call, jobs: list[JobSpec]) -> list[list[Any]]:
    """Validate all, store all, hand the PandaIDs to the Setupper; returns the submit reply items."""
    check_count(len(jobs))
    identity = call.identity
    production = call.is_production()
    for job in jobs:
        job.prodSourceLabel = job.prodSourceLabel or "user"
        rule = RULES.get(job.prodSourceLabel)
        if rule is None:
            raise BadRequest(f"unknown prodSourceLabel {job.prodSourceLabel!r}")
        if not may_submit(rule.label, identified=identity.secure, production=production):
            raise BadRequest(f"{ROLE_TEXT[rule.submit]} is required to submit {rule.label} jobs")
        if not job.computingSite:
            raise BadRequest(f"job {job.jobName!r} has no computingSite")
        job.prodUserID, job.prodUserName = identity.dn, identity.user
        if not production:
            restrict_user_fields(job, identity)
    untyped = [job for job in jobs if not job.resource_type]
    if untyped:
        types = call.tb.get_resource_types()
        for job in untyped:
            job.resource_type = resource_type_of(job.coreCount, job.minRamCount, types)
    for site in sorted({job.computingSite for job in jobs}):
        if call.services.queue(site) is None:
            raise BadRequest(f"unknown queue {site!r}: add it with 'pandasrv queue add'")
    user_jobs = [job for job in jobs if job.prodSourceLabel in policy.ANALYSIS_LABELS]
    if user_jobs:
        first = user_jobs[0]
        definition_id, jobset_id = call.tb.reserve_user_ids(call.owner, identity.dn, first.jobDefinitionID,
                                                            first.jobsetID)
        for job in user_jobs:
            job.jobDefinitionID = job.jobDefinitionID or definition_id
            job.jobsetID = job.jobsetID or jobset_id
    panda_ids = call.tb.insert_jobs(jobs, "defined")
    start_setupper(call.settings, panda_ids)
    return [[panda_id, job.jobDefinitionID,
             {"jobsetID": job.jobsetID} if job.prodSourceLabel in policy.ANALYSIS_LABELS else job.jobName]
            for job, panda_id in zip(jobs, panda_ids)]


def restrict_user_fields(job: JobSpec, identity: Identity) -> None:
    """A caller without the production role sets only user fields (docs/security.md): server fields are
    cleared, the priority is clamped, the VO is the caller's and a workingGroup needs a matching FQAN group."""
    for name in SERVER_FIELDS:
        setattr(job, name, None)
    job.currentPriority = user_priority(job.currentPriority)
    job.assignedPriority = user_priority(job.assignedPriority)
    job.VO = (identity.vo or "")[:16] or None
    groups = tuple(parse_fqan(fqan)[0] for fqan in identity.fqans)
    job.workingGroup = user_working_group(job.workingGroup, identity.vo, groups)


def _within(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def resource_type_of(core_count: int | None, min_ram_count: int | None, types: list[dict[str, Any]]) -> str | None:
    """The first resource type whose core and memory-per-core ranges hold the job (PanDA's JEDI does this
    for task jobs; here a submitted job without one gets it, so per-resource-type statistics add up)."""
    cores = max(1, core_count or 1)
    ram_per_core = (min_ram_count or 0) // cores
    for spec in types:
        if _within(cores, spec["mincore"], spec["maxcore"]) and \
                _within(ram_per_core, spec["minrampercore"], spec["maxrampercore"]):
            name: str = spec["resource_name"]
            return name
    return None


def reassign_jobs(call: Call, panda_ids: list[int]) -> list[bool]:
    """Back to ``defined`` (own jobs, or any with a production role), then through the Setupper again."""
    flags = call.tb.reassign_jobs(panda_ids, user=call.owner, is_production=call.is_production())
    moved = [i for i, flag in zip(panda_ids, flags) if flag]
    if moved:
        start_setupper(call.settings, moved)
    return flags


def switch_result(result: str, panda_id: int) -> tuple[bool, str]:
    messages = {"ok": "Succeeded", "notfound": f"job {panda_id} is not live (unknown or already finished)",
                "forbidden": f"job {panda_id} belongs to another user; the owner or a production role may change it"}
    return result == "ok", messages[result]


def offline_script(job: JobSpec) -> str:
    """A shell script that runs the job's payload the way the generic pilot does."""
    trf = job.transformation or ""
    name = trf.rsplit("/", 1)[-1]
    lines = ["#!/bin/bash", f"# offline execution of PandaID={job.PandaID} ({job.jobName})", "set -e"]
    if trf.startswith(("http://", "https://")):
        lines += [f"curl -sSf -o {shlex.quote(name)} {shlex.quote(trf)}", f"chmod +x {shlex.quote(name)}",
                  f"./{shlex.quote(name)} {job.jobParameters or ''}"]
    else:
        lines.append(f"{shlex.quote(trf)} {job.jobParameters or ''}")
    return "\n".join(lines) + "\n"


# --- v1 job/* ------------------------------------------------------------------------------------------

@endpoint("job/submit", role="user", http=("POST",), sync=False)
def submit(call: Call, jobs: str) -> dict[str, Any]:
    """Submit jobs (a JSON string of positional job states, at most 5000); data lists the new PandaIDs."""
    return ok(submit_jobs(call, decode_job_states(jobs, call.settings.max_body_bytes)))


@endpoint("job/get_status", http=("GET",))
def get_status(call: Call, job_ids: list[int], timeout: int = 60) -> dict[str, Any]:
    """Status and pending pilot command of each job (null for unknown ids)."""
    found = call.tb.get_job_status(check_ids(job_ids))
    return ok([{"status": found[i][0], "command": found[i][2]} if i in found else None for i in job_ids])


@endpoint("job/get_description", role="user")
def get_description(call: Call, job_ids: list[int]) -> dict[str, Any]:
    """Full job descriptions (attributes and Files), null for unknown ids."""
    jobs = call.tb.peek_jobs(check_ids(job_ids))
    return ok([job.to_dict() if job else None for job in jobs])


@endpoint("job/get_description_incl_archive", role="user")
def get_description_incl_archive(call: Call, job_ids: list[int]) -> dict[str, Any]:
    """Like get_description; archived jobs are in the same database here."""
    return get_description(call, job_ids)


@endpoint("job/kill", role="user", http=("POST",))
def kill(call: Call, job_ids: list[int], code: int | None = None, use_email_as_id: bool = False,
         kill_options: list[str] | None = None) -> dict[str, Any]:
    """Kill jobs (own jobs, or any with a production role); data is one flag per id."""
    flags = call.tb.kill_jobs(check_ids(job_ids), user=call.owner, is_production=call.is_production(),
                              code=code)
    return ok(flags)


@endpoint("job/reassign", role="user", http=("POST",))
def reassign(call: Call, job_ids: list[int]) -> dict[str, Any]:
    """Send jobs no pilot has started back to the Setupper; data is one flag per id."""
    return ok(reassign_jobs(call, check_ids(job_ids)))


@endpoint("job/set_command", role="production", http=("POST",))
def set_command(call: Call, job_id: int, command: str) -> dict[str, Any]:
    """Set the command the pilot receives with its next heartbeat reply."""
    success, message = switch_result(call.tb.set_job_command(job_id, command, user=call.user, is_production=True),
                                     job_id)
    return ok(message=message) if success else fail(message)


@endpoint("job/set_debug_mode", role="user", http=("POST",))
def set_debug_mode(call: Call, job_id: int, mode: bool) -> dict[str, Any]:
    """Switch debug mode of an own job (the pilot then sends frequent heartbeats with stdout)."""
    result = call.tb.set_debug_mode(job_id, mode, user=call.user, is_production=call.is_production())
    success, message = switch_result(result, job_id)
    return ok(message=message) if success else fail(message)


@endpoint("job/generate_offline_execution_script", role="user", http=("GET",))
def generate_offline_execution_script(call: Call, job_id: int, days: int | None = None) -> dict[str, Any]:
    """A shell script that reruns the job's payload outside PanDA."""
    (job,) = call.tb.peek_jobs([job_id], with_files=False)
    return ok(offline_script(job)) if job else fail(f"job {job_id} not found")


# --- v1 statistics/* and metaconfig/* -----------------------------------------------------------------

def _nested(rows: list[tuple[Any, ...]], *, skip: frozenset[str] = frozenset(),
            zeros: tuple[str, ...] = ()) -> dict[str, Any]:
    """Rows ``(k1, ..., kn, status, count)`` as ``{k1: {...: {kn: {status: count}}}}``, as PanDA's statistics
    calls answer: statuses in ``skip`` left out, every innermost map given the ``zeros`` states."""
    out: dict[str, Any] = {}
    for row in rows:
        if str(row[-2]) in skip:
            continue
        level = out
        for key in row[:-2]:
            level = level.setdefault(str(key), {})
        level[str(row[-2])] = level.get(str(row[-2]), 0) + int(row[-1])
    depth = len(rows[0]) - 2 if rows else 0

    def fill(level: dict[str, Any], remaining: int) -> None:
        for value in level.values():
            if remaining > 1:
                fill(value, remaining - 1)
            else:
                for state in zeros:
                    value.setdefault(state, 0)

    if zeros and depth:
        fill(out, depth)
    return out


# PanDA leaves merging out (it breaks the pilot factories' arithmetic) and always shows these states.
_ACTIVE_ZEROS = ("assigned", "activated", "running")
_WINDOW_ZEROS = ("assigned", "activated", "running", "finished", "failed")
MAX_TIME_WINDOW = 10080  # minutes (7 days)


def _since(minutes: int | None, default_hours: int = 12) -> _dt.datetime:
    now = utcnow()
    return now - (_dt.timedelta(hours=default_hours) if minutes is None else _dt.timedelta(minutes=minutes))


def _bad_window(time_window: int | None) -> bool:
    return time_window is not None and not 0 <= time_window <= MAX_TIME_WINDOW


_WINDOW_MESSAGE = 'Parameter "time_window" needs to be a positive integer smaller than 10080 min (7 days)'


@endpoint("statistics/active_job_stats_by_site", http=("GET",))
def active_job_stats_by_site(call: Call) -> dict[str, Any]:
    """Live job counts per queue and status: ``{site: {status: n}}`` (Harvester's job statistics)."""
    rows = call.tb.job_statistics(("computingSite", "jobStatus"))
    return ok(_nested(rows, skip=frozenset({"merging"}), zeros=_ACTIVE_ZEROS))


@endpoint("statistics/active_job_detailed_stats_by_site", http=("GET",))
def active_job_detailed_stats_by_site(call: Call) -> dict[str, Any]:
    """Live job counts ``{site: {resource_type: {label: {status: n}}}}`` (Harvester's worker adjuster)."""
    rows = call.tb.job_statistics(("computingSite", "resource_type", "prodSourceLabel", "jobStatus"))
    return ok(_nested(rows, skip=frozenset({"merging"}), zeros=_ACTIVE_ZEROS))


@endpoint("statistics/job_stats_by_site_and_resource_type", http=("GET",))
def job_stats_by_site_and_resource_type(call: Call, time_window: int | None = None) -> dict[str, Any]:
    """Counts ``{site: {resource_type: {status: n}}}`` of live jobs and of jobs archived within
    ``time_window`` minutes (default 12 h)."""
    if _bad_window(time_window):
        return fail(_WINDOW_MESSAGE, {})
    rows = call.tb.job_statistics(("computingSite", "resource_type", "jobStatus"), archived_since=_since(time_window))
    return ok(_nested(rows, zeros=_WINDOW_ZEROS))


@endpoint("statistics/job_stats_by_site_share_and_resource_type", http=("GET",))
def job_stats_by_site_share_and_resource_type(call: Call, time_window: int | None = None) -> dict[str, Any]:
    """Counts ``{site: {label: {resource_type: {status: n}}}}`` of live jobs and of jobs archived within
    ``time_window`` minutes (PanDA derives the label from the global share; here it is the job's own)."""
    if _bad_window(time_window):
        return fail(_WINDOW_MESSAGE, {})
    rows = call.tb.job_statistics(("computingSite", "prodSourceLabel", "resource_type", "jobStatus"),
                                  archived_since=_since(time_window))
    return ok(_nested(rows, zeros=_WINDOW_ZEROS))


@endpoint("statistics/job_stats_by_cloud", http=("GET",))
def job_stats_by_cloud(call: Call, type: str = "production") -> dict[str, Any]:
    """Counts ``{cloud: {status: n}}`` of production or analysis jobs, live or archived in the last 12 h."""
    if type not in ("production", "analysis"):
        return fail('Parameter "type" needs to be either "production" or "analysis" ', {})
    labels = policy.statistics_labels("production" if type == "production" else "analysis")
    return ok(_nested(call.tb.job_statistics(("cloud", "jobStatus"), labels, archived_since=_since(None))))


@endpoint("metaconfig/get_resource_types", http=("GET",))
def get_resource_types(call: Call) -> dict[str, Any]:
    """The resource types with their core and memory ranges."""
    return ok(call.tb.get_resource_types())


@endpoint("metaconfig/get_banned_users", http=("GET",))
def get_banned_users(call: Call) -> dict[str, Any]:
    """The names of banned users."""
    return ok(sorted(call.tb.get_banned_users()))
