"""check_decoded against its definition: a value is refused when, fully expanded (shared references counted
again), its text lengths plus ITEM_BYTES per item exceed the limit (413), or when it nests deeper than
MAX_DEPTH (400); it is accepted otherwise. The walk takes shortcuts (a level charged as a whole); generated
values, shared lists among them, check that the outcome is still the definition's."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pandasrv.web.codecs import ITEM_BYTES, MAX_DEPTH, BadRequest, check_decoded

LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6),
                   st.binary(max_size=6))
TREES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(st.text(max_size=3), inner, max_size=3),
    inner.map(lambda shared: [shared] * 3),  # one object referenced three times
), max_leaves=25)


def expanded(value: Any) -> tuple[int, int]:
    """(size, depth) by definition: the value's own ITEM_BYTES plus its text, plus its children's."""
    if isinstance(value, (str, bytes)):
        return ITEM_BYTES + len(value), 0
    children: list[Any] = []
    if isinstance(value, (list, tuple)):
        children = list(value)
    elif isinstance(value, dict):
        children = [*value, *value.values()]
    parts = [expanded(child) for child in children]
    return ITEM_BYTES + sum(size for size, _ in parts), 1 + max((depth for _, depth in parts), default=-1)


@settings(max_examples=400, deadline=None)
@given(tree=TREES, nest=st.integers(min_value=0, max_value=MAX_DEPTH + 3), limit=st.integers(min_value=0, max_value=600))
def test_outcome_is_the_definitions(tree: Any, nest: int, limit: int) -> None:
    for _ in range(nest):
        tree = [tree]
    size, depth = expanded(tree)
    try:
        assert check_decoded(tree, limit) is tree
        outcome = "accepted"
    except BadRequest as exc:
        outcome = "too large" if exc.status == 413 else "too deep"
    too_large, too_deep = size > limit, depth > MAX_DEPTH
    if too_large and too_deep:
        assert outcome != "accepted"
    else:
        assert outcome == ("too large" if too_large else "too deep" if too_deep else "accepted")
