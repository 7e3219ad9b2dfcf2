"""getJob's rules: what a claim request receives at a given queue (panda-protocol.md §2.2).

The web edge builds one ``ClaimRequest`` from the wire names; ``for_queue`` applies the queue's state to it
and decides its job labels (``policy.label_set``), or says why the request gets no job at all.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from pandasrv.logic.constants import MAX_JOBS_PER_CALL
from pandasrv.logic.policy import label_set
from pandasrv.taskbuffer.claim_request import ClaimRequest

# Requests that a queue in ``test`` status serves from its test labels instead (PanDA's getJob).
TEST_QUEUE_REQUESTS = frozenset({"user", "managed", "unified"})


def for_queue(request: ClaimRequest, queue: Mapping[str, Any] | None) -> ClaimRequest | str:
    """The claim to run at ``queue`` (its row, None if there is none), or the reason there is none."""
    if queue is None:
        return f"no queue named {request.site}"
    if queue["status"] == "offline":
        return f"queue {request.site} is offline"
    asked = "test" if queue["status"] == "test" and request.label in TEST_QUEUE_REQUESTS else request.label
    return replace(request, n=max(1, min(request.n, MAX_JOBS_PER_CALL)), labels=label_set(asked))
