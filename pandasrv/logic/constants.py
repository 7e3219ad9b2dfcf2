"""The dispatcher's reply codes and the request limits every entry point shares, each defined once.

StatusCodes are PanDA's (``jobdispatcher/Protocol.py``): the legacy and v1 forms, the job and the credential
calls all answer with these numbers. What is written into a job's columns (pilot commands, ErrorCodes, the
kill table) is in ``pandasrv.taskbuffer.codes``, next to the SQL that writes it.
"""

from __future__ import annotations

SC_SUCCESS = 0
SC_NO_JOBS = 20
SC_FAILED = 30
SC_INVALID = 50
SC_ROLE = 60
SC_PERMS = 70
SC_MISSING_KEY = 80
SC_NOT_FOUND = 90

ROLE_DIALOG = "no production/pilot role in VOMS FQANs or non pilot owner"

MAX_JOBS_PER_CALL = 1000  # jobs one getJob / acquire_jobs call may claim
MAX_IDS = 5500            # PandaIDs one status, kill or reassign call may name
