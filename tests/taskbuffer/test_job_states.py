"""The one transition table."""

import pytest

from pandasrv.taskbuffer import job_states as js


def test_every_state_has_a_table_and_transitions():
    assert set(js.TRANSITIONS) == set(js.TABLE_OF)
    for old, targets in js.TRANSITIONS.items():
        assert targets <= js.ALL_STATES, old


def test_normal_life_of_a_job_is_allowed():
    path = ["defined", "assigned", "activated", "sent", "starting", "running", "holding", "finished"]
    for old, new in zip(path, path[1:]):
        js.check(old, new)


@pytest.mark.parametrize("old,new", [("finished", "running"), ("failed", "holding"), ("activated", "finished"),
                                     ("running", "activated"), ("holding", "running"), ("defined", "bogus")])
def test_illegal_transitions_are_refused(old, new):
    with pytest.raises(js.IllegalTransition):
        js.check(old, new)


def test_heartbeat_keeps_state_but_final_states_are_frozen():
    assert js.is_allowed("running", "running")
    assert not js.is_allowed("finished", "finished")


def test_sources_and_tables():
    assert "holding" in js.sources_of("finished") and "running" not in js.sources_of("finished")
    assert js.table_of("sent") == js.ACTIVE_TABLE and js.table_of("closed") == js.ARCHIVED_TABLE
    with pytest.raises(ValueError):
        js.table_of("nope")
