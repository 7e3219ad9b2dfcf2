"""What a getJob claim asks of the store: one typed, frozen value, built once at the web edge.

The web layer fills it from the wire names (``getJob``'s camelCase, ``pilot/acquire_jobs``'s snake_case),
the logic layer decides which job labels it may receive (``pandasrv.logic.getjob.for_queue``), and the store
turns it into the claim's WHERE clause and SET list (``db_proxy_mods/jobs_claim.py``). It crosses the
ConBridge pipe as it is (a frozen dataclass pickles by value).
"""

from __future__ import annotations

from dataclasses import dataclass

NODE_CHARS = 128  # jobs_active.modificationHost


@dataclass(frozen=True, kw_only=True)
class ClaimRequest:
    """Up to ``n`` activated jobs of queue ``site`` whose ``prodSourceLabel`` is in ``labels``.

    Zero limits and None filters mean "any". ``label`` is the prodSourceLabel the pilot asked for;
    ``labels`` is what that request receives, decided by the logic layer (no labels: no job).
    """

    site: str
    n: int = 1
    label: str | None = None
    labels: tuple[str, ...] = ()
    memory: int = 0                  # MB the pilot offers: jobs with minRamCount up to it (or 0)
    disk: int = 0                    # MB of scratch: jobs with maxDiskCount up to it (or 0)
    walltime: int = 0                # seconds left: jobs with maxWalltime up to it (or none)
    resource_type: str | None = None
    owner: str | None = None         # prodUserName: only this user's jobs
    task_id: int | None = None       # jediTaskID
    background: bool = False         # only jobs with jobExecutionID = 1; otherwise it is set to 0
    node: str | None = None          # stamped on the jobs: modificationHost
    computing_element: str | None = None
    scheduler_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("memory", "disk", "walltime"):
            if getattr(self, name) < 0:
                object.__setattr__(self, name, 0)
        for name in ("label", "resource_type", "owner", "computing_element", "scheduler_id"):
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)
        object.__setattr__(self, "node", self.node[:NODE_CHARS] if self.node else None)
        object.__setattr__(self, "labels", tuple(self.labels))
