"""getJob's queue rules on a ClaimRequest, and the request's own normalisation."""

from __future__ import annotations

import pickle

import pytest

from pandasrv.logic.constants import MAX_JOBS_PER_CALL
from pandasrv.logic.getjob import for_queue
from pandasrv.logic.policy import label_set
from pandasrv.taskbuffer.claim_request import NODE_CHARS, ClaimRequest


def queue(status: str) -> dict[str, object]:
    return {"name": "Q", "site": "S", "status": status, "data": {}}


def test_no_queue_and_an_offline_queue_give_no_claim():
    assert for_queue(ClaimRequest(site="Q"), None) == "no queue named Q"
    assert for_queue(ClaimRequest(site="Q"), queue("offline")) == "queue Q is offline"


@pytest.mark.parametrize("label", [None, "managed", "user", "unified", "test", "ptest", "nonsense"])
def test_an_online_queue_serves_the_label_set_of_the_request(label):
    claim = for_queue(ClaimRequest(site="Q", label=label), queue("online"))
    assert isinstance(claim, ClaimRequest) and claim.labels == label_set(label) and claim.label == label


@pytest.mark.parametrize(("label", "served"), [("managed", "test"), ("user", "test"), ("unified", "test"),
                                               (None, None), ("ptest", "ptest")])
def test_a_test_queue_serves_its_test_labels_to_the_general_requests(label, served):
    claim = for_queue(ClaimRequest(site="Q", label=label), queue("test"))
    assert isinstance(claim, ClaimRequest) and claim.labels == label_set(served)


@pytest.mark.parametrize(("asked", "claimed"), [(0, 1), (-5, 1), (7, 7), (10**9, MAX_JOBS_PER_CALL)])
def test_the_number_of_jobs_is_kept_within_one_call(asked, claimed):
    claim = for_queue(ClaimRequest(site="Q", n=asked), queue("online"))
    assert isinstance(claim, ClaimRequest) and claim.n == claimed


def test_a_request_normalises_what_the_wire_leaves_empty_or_out_of_range():
    request = ClaimRequest(site="Q", label="", memory=-1, disk=-2, walltime=-3, resource_type="", owner="",
                           computing_element="", scheduler_id="", node="n" * 500, labels=["a"])  # type: ignore[arg-type]
    assert (request.label, request.resource_type, request.owner, request.computing_element, request.scheduler_id) == (
        None, None, None, None, None)
    assert (request.memory, request.disk, request.walltime) == (0, 0, 0)
    assert request.node == "n" * NODE_CHARS and request.labels == ("a",)
    assert ClaimRequest(site="Q", node="").node is None


def test_a_request_crosses_the_con_bridge_pipe_as_it_is():
    request = ClaimRequest(site="Q", n=3, labels=("managed",), memory=2000, owner="bob", background=True, node="wn")
    assert pickle.loads(pickle.dumps(request)) == request
    with pytest.raises(AttributeError):
        request.site = "other"  # type: ignore[misc]
