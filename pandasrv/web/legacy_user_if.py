"""Legacy UserIF calls (``/server/panda/submitJobs`` ...) for pre-2025 clients: pickles or JSON.

Pickled input is only ever read through ``pickles.loads`` (an allow-list); pickled replies use
PanDA's class names so old clients can load them.
"""

from __future__ import annotations

import json
from typing import Any

from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.wire import json_default
from pandasrv.web import pickles
from pandasrv.web.codecs import BadRequest, Raw, loads_json
from pandasrv.web.context import Call
from pandasrv.web.registry import LooseInt, ParamError, convert, endpoint
from pandasrv.web.user_if import check_count, check_ids, offline_script, reassign_jobs, submit_jobs, switch_result


def _pickle(value: Any) -> Raw:
    return Raw(pickles.dumps(value))


def _is_json(text: Any) -> bool:
    return isinstance(text, list) or (isinstance(text, str) and text.lstrip()[:1] in ("[", "{"))


def _decode(call: Call, text: Any) -> Any:
    """JSON if it looks like JSON, else an allow-listed pickle; both bounded, both failures clear errors."""
    if isinstance(text, list):
        return text
    limit = call.settings.max_body_bytes
    if _is_json(text):
        return loads_json(text, limit)
    try:
        return pickles.loads(text or "", limit)
    except pickles.PickleRefused as exc:
        raise BadRequest(str(exc)) from None


def _ids(call: Call, text: Any) -> list[int]:
    value = _decode(call, text)
    if isinstance(value, (tuple, set)):
        value = list(value)
    if not isinstance(value, list):
        raise BadRequest("ids must be a list of PandaIDs")
    try:
        return check_ids([convert("ids[]", int, v, typed=not isinstance(v, str)) for v in value])
    except ParamError as exc:
        raise BadRequest(str(exc)) from None


@endpoint("submitJobs", role="user", denied=lambda m: "False", sync=False)
def submitJobs(call: Call, jobs: Any, toPending: Any = None) -> Any:
    """Submit JobSpecs (pickled list, or JSON states); reply: pickled ``(PandaID, jobDefinitionID, name)`` list."""
    as_json = _is_json(jobs)
    try:
        decoded = _decode(call, jobs)
        if not isinstance(decoded, list):
            raise BadRequest("jobs must be a list")
        check_count(len(decoded))
        specs = [JobSpec.from_state(j) if isinstance(j, list) else j for j in decoded]
        if not all(isinstance(j, JobSpec) for j in specs):
            raise BadRequest("jobs must be JobSpecs")
        for job in specs:
            job.normalise()
        result = submit_jobs(call, specs)
    except BadRequest as exc:
        return f"ERROR: {exc}"
    except (ValueError, TypeError) as exc:
        return f"ERROR: invalid job: {exc}"
    if as_json:
        return Raw(json.dumps(result), "application/json")
    return _pickle([tuple(item) for item in result])


def _describe(call: Call, ids: Any) -> Any:
    jobs = call.tb.peek_jobs(_ids(call, ids))
    if call.accept_json:
        return Raw(json.dumps([job.to_dict() if job else None for job in jobs], default=json_default),
                   "application/json")
    return _pickle(jobs)


@endpoint("getJobStatus", role="user")
def getJobStatus(call: Call, ids: Any, no_pickle: Any = None) -> Any:
    """JobSpecs of PandaIDs (pickled, or JSON dicts with ``Accept: application/json``); None for unknown."""
    return _describe(call, ids)


@endpoint("getFullJobStatus", role="user", denied=lambda m: "False")
def getFullJobStatus(call: Call, ids: Any) -> Any:
    """Like getJobStatus, including archived jobs."""
    return _describe(call, ids)


@endpoint("killJobs", role="user", denied=lambda m: "False")
def killJobs(call: Call, ids: Any, code: LooseInt = None, useMailAsID: Any = None, killOpts: Any = None) -> Raw:
    """Kill own jobs (any job with a production role); reply: pickled list of flags."""
    kill_code = code if code is not None and code >= 0 else None
    return _pickle(call.tb.kill_jobs(_ids(call, ids), user=call.owner, is_production=call.is_production(), code=kill_code))


@endpoint("reassignJobs", role="user", denied=lambda m: "False")
def reassignJobs(call: Call, ids: Any, forPending: Any = None, firstSubmission: Any = None) -> Raw:
    """Send own not-yet-started jobs back to the Setupper; reply: pickled True."""
    reassign_jobs(call, _ids(call, ids))
    return _pickle(True)


@endpoint("getJobStatisticsPerSite")
def getJobStatisticsPerSite(call: Call, predefined: Any = None, workingGroup: Any = None, countryGroup: Any = None,
                            jobType: Any = None, minPriority: Any = None, readArchived: Any = None) -> Raw:
    """Live job counts ``{site: {status: n}}``, pickled."""
    stats: dict[str, dict[str, int]] = {}
    for site, status, count in call.tb.job_statistics(("computingSite", "jobStatus")):
        stats.setdefault(site, {})[status] = count
    return _pickle(stats)


@endpoint("setDebugMode", role="user", denied=lambda m: m)
def setDebugMode(call: Call, pandaID: int, modeOn: Any = "True") -> str:
    """Switch debug mode of an own job; reply ``Succeeded`` or the reason it was refused."""
    result = call.tb.set_debug_mode(pandaID, str(modeOn) == "True", user=call.user, is_production=call.is_production())
    return switch_result(result, pandaID)[1]


@endpoint("getScriptOfflineRunning", role="user")
def getScriptOfflineRunning(call: Call, pandaID: int, days: LooseInt = None) -> str:
    """A shell script that reruns the job's payload outside PanDA."""
    (job,) = call.tb.peek_jobs([pandaID], with_files=False)
    return offline_script(job) if job else f"ERROR: job {pandaID} not found"
