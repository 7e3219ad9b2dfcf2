"""Plugins for the agent tests: they record what they were asked, or say what the generic ones never do."""

from __future__ import annotations

import threading

from pandasrv.dataservice.plugins.generic import AdderPlugin, FinisherPlugin

PROCESSED: list[int] = []
_lock = threading.Lock()


class RecordingAdder(AdderPlugin):
    def process(self, job, report):
        with _lock:
            PROCESSED.append(job.PandaID)
        return super().process(job, report)


class TransferringAdder(AdderPlugin):
    """Outputs must still move to a remote destination."""

    def process(self, job, report):
        return "transferring", None


class ArrivedFinisher(FinisherPlugin):
    """The data management system says every output arrived."""

    def decide(self, job):
        return "finished"
