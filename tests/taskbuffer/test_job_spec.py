"""The job model's wire forms: positional states, dict form, pickle state and DB rows."""

import datetime as dt
import json

import pytest

from pandasrv.taskbuffer.file_spec import FILE_ATTRIBUTES, FileSpec
from pandasrv.taskbuffer.job_spec import ATTRIBUTES, TABLE_ATTRIBUTES, JobSpec
from pandasrv.taskbuffer.wire import json_default, json_object_hook

# A file state exactly as panda-client 2.2.0 sends it: its 18 attributes, then the owner slot.
CLIENT_FILE_STATE = ["NULL", "NULL", "NULL", "compat-test-echo-1.log.tgz", "log", "user.tester.compat.log", "NULL",
                     "NULL", "NULL", "NULL", "NULL", "user.tester.compat.log", "NULL", "TEST_SITE", "NULL", "NULL",
                     "NULL", "NULL", None]


def client_job_state() -> list:
    state = ["NULL"] * len(ATTRIBUTES)
    values = {"jobDefinitionID": 1, "creationHost": "vm", "prodSourceLabel": "user", "assignedPriority": 1000,
              "currentPriority": 1000, "attemptNr": 0, "maxAttempt": 1, "jobName": "compat-test-echo-1",
              "computingSite": "TEST_SITE", "jobParameters": "hello from panda-client", "destinationSE": "TEST_SITE",
              "VO": "atlas", "jobsetID": 7,
              "stateChangeTime": {"_datetime_object": "2026-11-28 10:11:12.000123"}}
    for name, value in values.items():
        state[ATTRIBUTES.index(name)] = value
    return state + [[CLIENT_FILE_STATE]]


def test_attribute_order_is_pandas():
    assert len(ATTRIBUTES) == 126 and len(FILE_ATTRIBUTES) == 22
    assert ATTRIBUTES[:5] == ("PandaID", "jobDefinitionID", "schedulerID", "pilotID", "creationTime")
    assert ATTRIBUTES[18] == "jobStatus" and ATTRIBUTES[116] == "resource_type" and ATTRIBUTES[-1] == "outputFileType"
    assert "jobParameters" not in TABLE_ATTRIBUTES and len(TABLE_ATTRIBUTES) == 124


def test_client_state_decodes_positionally():
    job = JobSpec.from_state(json.loads(json.dumps(client_job_state())))
    assert job.PandaID is None and job.jobDefinitionID == 1 and job.jobsetID == 7
    assert job.currentPriority == 1000 and job.jobParameters == "hello from panda-client"
    assert job.stateChangeTime == dt.datetime(2026, 11, 28, 10, 11, 12, 123)
    (log,) = job.Files
    assert log.lfn == "compat-test-echo-1.log.tgz" and log.type == "log" and log.destinationSE == "TEST_SITE"
    assert log.jediTaskID is None and log.attemptNr is None


def test_state_round_trip_and_shorter_states():
    job = JobSpec(PandaID=5, jobStatus="defined", jobName="j", currentPriority=3)
    job.add_file(FileSpec(lfn="a.root", type="output", fsize=10))
    again = JobSpec.from_state(job.to_state())
    assert again == job and again.Files[0].PandaID == 5
    short = JobSpec.from_state([9, 2, "NULL"])
    assert short.PandaID == 9 and short.jobDefinitionID == 2 and short.jobName is None and short.Files == []


@pytest.mark.parametrize("bad", [{"a": 1}, ["x"] * 200, [1] * 126 + ["not a list"]])
def test_malformed_states_are_refused(bad):
    with pytest.raises(ValueError):
        JobSpec.from_state(bad)


def test_dict_form_uses_reply_datetime_marker():
    job = JobSpec(PandaID=1, creationTime=dt.datetime(2026, 1, 2, 3, 4, 5))
    text = json.dumps(job.to_dict(), default=json_default)
    assert '{"__datetime__": "2026-01-02T03:04:05"}' in text
    assert JobSpec.from_dict(json.loads(text, object_hook=json_object_hook)).creationTime == job.creationTime


def test_row_fills_zero_attributes_and_truncates():
    job = JobSpec(pilotErrorDiag="x" * 600, currentPriority="12")
    row = job.row()
    assert row["currentPriority"] == 12 and row["attemptNr"] == 0 and row["PandaID"] is None
    assert len(row["pilotErrorDiag"]) == 500


def test_pickle_state_is_positional():
    job = JobSpec(PandaID=3, jobName="p")
    job.add_file(FileSpec(lfn="f"))
    state = job.__getstate__()
    assert state[0] == 3 and state[1] == "NULL" and state[19] == "p" and isinstance(state[-1], list)
    copy = JobSpec.__new__(JobSpec)
    copy.__setstate__(state)
    assert copy.PandaID == 3 and copy.jobDefinitionID is None and copy.Files[0].lfn == "f"
