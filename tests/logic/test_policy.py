"""The label table: its getJob label sets, its rules as a class, and docs/api.md showing exactly it."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pandasrv.logic.policy import (
    ANALYSIS_LABELS,
    LABELS,
    REQUEST_LABELS,
    USER_PRIORITY_RANGE,
    fetch_scope,
    label_set,
    label_table_markdown,
    may_fetch,
    may_submit,
    statistics_labels,
    user_priority,
    user_working_group,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_docs_show_the_table_from_code():
    assert label_table_markdown() in DOC.read_text()


def test_label_sets_keep_pandas_getjob_semantics():
    assert label_set(None) == label_set("") == label_set("managed") == ("managed", "test", "prod_test", "install")
    assert label_set("user") == ("user", "panda", "install")
    assert set(label_set("unified")) == {"managed", "test", "prod_test", "install", "user", "panda", "unified"}
    assert set(label_set("test")) == {"prod_test", "install", "test"}
    assert label_set("ptest") == ("ptest",) and label_set("nonsense") == ()
    assert set(ANALYSIS_LABELS) == {"user", "panda", "ptest", "rc_test", "rc_test2", "rc_alrb"}


def test_job_stats_by_cloud_counts_pandas_label_lists():
    assert set(statistics_labels("analysis")) == {"user", "panda"}
    assert set(statistics_labels("production")) == {"managed", "test", "prod_test", "ptest", "rc_test", "rc_test2",
                                                     "rc_alrb"}


labels = st.sampled_from([rule.label for rule in LABELS] + ["nonsense"])
requests = st.sampled_from([*REQUEST_LABELS, None, "nonsense"])


@given(labels, requests, st.booleans(), st.booleans(), st.booleans())
def test_fetch_rules(label, request, identified, pilot, owner):
    allowed = may_fetch(label, request, identified=identified, pilot=pilot, owner=owner)
    if allowed:
        assert label in label_set(request)
        assert pilot or (identified and owner and request == "user")
    if not identified and not pilot:
        assert fetch_scope(request, identified=identified, pilot=pilot) is None and not allowed


@given(labels, st.booleans(), st.booleans())
def test_submit_rules(label, identified, production):
    allowed = may_submit(label, identified=identified, production=production)
    assert allowed <= identified
    if allowed and not production:
        assert label in ANALYSIS_LABELS  # without the production role only analysis labels


@given(st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63)))
def test_user_priority_is_bounded(value):
    bounded = user_priority(value)
    assert (bounded is None) == (value is None)
    if value is not None:
        assert USER_PRIORITY_RANGE[0] <= bounded <= USER_PRIORITY_RANGE[1]
        assert bounded == value or not USER_PRIORITY_RANGE[0] <= value <= USER_PRIORITY_RANGE[1]


def test_working_group_needs_a_matching_fqan_group():
    assert user_working_group("AP_Higgs", "atlas", ("atlas/AP_Higgs",)) == "AP_Higgs"
    assert user_working_group("AP_Higgs", "atlas", ("atlas",)) is None
    assert user_working_group("AP_Higgs", None, ("atlas/AP_Higgs",)) is None
