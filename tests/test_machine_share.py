"""The readers-writer lock that lets pytest-xdist's workers share the machine (tests/conftest.py). flock's locks
belong to an open file, so two ``MachineShare`` objects on one directory contend like two workers."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.conftest import MachineShare

NOT_YET = 0.3  # how long a blocked holder is given to show that it is blocked


def _enter(share: MachineShare, solo: bool, inside: threading.Event, leave: threading.Event) -> threading.Thread:
    def hold() -> None:
        with share.held(solo):
            inside.set()
            leave.wait(30)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def test_ordinary_tests_share_and_a_solo_test_waits_for_them_and_holds_the_next_off(tmp_path: Path) -> None:
    first, second, solo, late = (MachineShare(tmp_path / "run") for _ in range(4))
    events = {name: (threading.Event(), threading.Event()) for name in ("first", "second", "solo", "late")}
    threads = [_enter(first, False, *events["first"]), _enter(second, False, *events["second"])]
    assert events["first"][0].wait(10) and events["second"][0].wait(10)  # two ordinary tests at once

    threads.append(_enter(solo, True, *events["solo"]))
    assert not events["solo"][0].wait(NOT_YET)
    threads.append(_enter(late, False, *events["late"]))
    assert not events["late"][0].wait(NOT_YET)  # queued behind the waiting solo test, not beside the others

    events["first"][1].set()
    events["second"][1].set()
    assert events["solo"][0].wait(10)
    assert not events["late"][0].is_set()
    events["solo"][1].set()
    assert events["late"][0].wait(10)
    events["late"][1].set()
    for thread in threads:  # every holder has let go before its files are closed
        thread.join(10)
    for share in (first, second, solo, late):
        share.close()
