"""The project's one clock: "now" as a naive UTC datetime.

Every layer stores and compares naive UTC (the database columns carry no zone, on every backend), so every
layer takes "now" from here; a test that moves time patches or passes one value instead of six spellings.
"""

from __future__ import annotations

import datetime as _dt


def utcnow() -> _dt.datetime:
    """Naive UTC "now": what the SQL receives as ``:now`` and what every timeout is measured against."""
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
