"""The per-process status hints: a heartbeat to a job last seen in another state skips the guarded update."""

from __future__ import annotations

from pandasrv.clock import utcnow
from pandasrv.web.context import StatusHints
from pandasrv.web.dispatch import heartbeat_request


def test_a_job_last_seen_in_another_state_is_a_transition():
    hints = StatusHints()
    hints.saw(7, "sent")
    assert hints.changes_state(7, "starting")
    assert not hints.changes_state(7, "sent")
    assert not hints.changes_state(8, "running")  # never seen: no hint, the guarded update is tried first


def test_forgotten_and_oldest_entries_give_no_hint():
    hints = StatusHints(size=2)
    for panda_id in (1, 2, 3):
        hints.saw(panda_id, "running")
    assert not hints.changes_state(1, "starting")  # dropped beyond the size
    assert hints.changes_state(3, "starting")
    hints.saw(3, None)
    assert not hints.changes_state(3, "starting")


def test_heartbeat_request_takes_the_hint():
    hints = StatusHints()
    hints.saw(5, "starting")
    request = heartbeat_request("5", "running", {}, hints)
    assert not isinstance(request, dict)
    assert request.changes_state and request.repeat(utcnow()) is None
    again = heartbeat_request("6", "running", {}, hints)
    assert not isinstance(again, dict)
    assert not again.changes_state and again.repeat(utcnow()) is not None

