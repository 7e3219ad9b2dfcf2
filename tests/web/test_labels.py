"""Every cell of the label table (pandasrv/logic/policy.py): who may submit each label, who may fetch it.

Both matrices run in token and x509 mode against an in-process app; the expected cell comes from the
policy functions, and the job owner must always be the caller, whatever the client put in the job.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from pandasrv.logic.policy import LABELS, REQUEST_LABELS, USER_PRIORITY_RANGE, may_fetch, may_submit
from tests.conftest import fresh_database
from tests.web.authz import GOOD, VO, World, token_world, x509_world
from tests.web.helpers import make_job

pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture(params=["x509", "token"])
def world(request: pytest.FixtureRequest, test_databases: Any, tmp_path: Any) -> Iterator[World]:
    with fresh_database(test_databases, "sqlite", tmp_path) as db_url:
        with (x509_world if request.param == "x509" else token_world)(db_url, tmp_path) as made:
            yield made


def _queue(world: World, name: str) -> str:
    world.tb.add_queue(name, name, "online", {"astorages": {a: ["LOCAL"] for a in ("pr", "pw", "pl")}})
    return name


HOSTILE = {"prodUserName": "victim", "prodUserID": "/DC=x/CN=victim", "specialHandling": "ddm:rucio,dm",
           "commandToPilot": "tobekilled", "lockedby": "jedi", "VO": "othervo", "workingGroup": "AP_Higgs",
           "currentPriority": 2**31 - 1, "assignedPriority": 2**31 - 1}


def test_submit_matrix(world: World) -> None:
    site = _queue(world, "Q_SUBMIT")
    wrong: list[str] = []
    cells = 0
    for name in GOOD:
        roles = world.roles[name]
        for rule in LABELS:
            cells += 1
            job = make_job(site, f"{name}-{rule.label}", label=rule.label)
            for column, value in HOSTILE.items():
                setattr(job, column, value)
            reply = world.client.simulate_post("/api/v1/job/submit", json={"jobs": json.dumps([job.to_state()])},
                                               **world.request_kwargs(name)).json
            expected = may_submit(rule.label, identified="user" in roles, production="production" in roles)
            if bool(reply["success"]) != expected:
                wrong.append(f"{world.mode} {name} submit {rule.label}: {reply}")
                continue
            if not expected:
                continue
            stored = world.tb.peek_jobs([reply["data"][0][0]])[0]
            problems = _stored_problems(stored, world.owners[name], production="production" in roles)
            wrong.extend(f"{world.mode} {name} submit {rule.label}: {p}" for p in problems)
    assert cells == len(GOOD) * len(LABELS)
    assert wrong == [], f"{len(wrong)} of {cells} submit cells wrong:\n" + "\n".join(wrong)


def _stored_problems(job: Any, owner: str | None, production: bool) -> list[str]:
    problems = []
    if job.prodUserName != owner or job.prodUserID == HOSTILE["prodUserID"]:
        problems.append(f"owner {job.prodUserName!r}/{job.prodUserID!r}, expected {owner!r}")
    if production:
        return problems
    for column in ("specialHandling", "commandToPilot", "lockedby", "workingGroup"):
        if getattr(job, column) not in (None, ""):
            problems.append(f"user-set {column} kept: {getattr(job, column)!r}")
    if job.VO != VO:
        problems.append(f"VO {job.VO!r}, expected the caller's {VO!r}")
    if not USER_PRIORITY_RANGE[0] <= job.currentPriority <= USER_PRIORITY_RANGE[1]:
        problems.append(f"currentPriority {job.currentPriority} not clamped")
    return problems


def _get_job(world: World, name: str, site: str, request: str) -> dict[str, Any]:
    kwargs = world.request_kwargs(name)
    kwargs.setdefault("headers", {})["Accept"] = "application/json"
    return world.client.simulate_post("/server/panda/getJob", params={"siteName": site, "prodSourceLabel": request},
                                      **kwargs).json


def test_fetch_matrix(world: World) -> None:
    """A job of each label owned by alice; each identity asks with each request label."""
    wrong: list[str] = []
    cells = 0
    for name in GOOD:
        roles = world.roles[name]
        for rule in LABELS:
            site = _queue(world, f"Q_{name}_{rule.label}".upper())
            job = make_job(site, "victim", label=rule.label, prodUserName=world.owners["alice"])
            (waiting,) = world.tb.insert_jobs([job], status="activated")
            for request in REQUEST_LABELS:
                cells += 1
                reply = _get_job(world, name, site, request)
                got = reply.get("PandaID") == waiting
                expected = may_fetch(rule.label, request, identified="user" in roles, pilot="pilot" in roles,
                                     owner=name == "alice")
                if got != expected or reply["StatusCode"] not in (0, 20, 60):
                    wrong.append(f"{world.mode} {name} fetch {rule.label} via {request}: {reply.get('StatusCode')}")
                if got:
                    job = make_job(site, "victim", label=rule.label, prodUserName=world.owners["alice"])
                    (waiting,) = world.tb.insert_jobs([job], status="activated")
    assert cells == len(GOOD) * len(LABELS) * len(REQUEST_LABELS)
    assert wrong == [], f"{len(wrong)} of {cells} fetch cells wrong:\n" + "\n".join(wrong)
