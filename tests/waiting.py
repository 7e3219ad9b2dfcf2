"""Waiting on a condition, the one way the tests wait for something that happens in another process or thread.

No test sleeps for a fixed time: it polls the condition it needs, with a deadline far above the usual time, so a
loaded machine makes a test slower, never wrong.
"""

from __future__ import annotations

import time
from typing import Callable


def wait_for(condition: Callable[[], object], timeout: float, step: float = 0.1) -> bool:
    """Poll ``condition`` every ``step`` seconds until it is truthy or ``timeout`` seconds have passed; the
    result is the condition's last value as a bool, for ``assert wait_for(...), message``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())
