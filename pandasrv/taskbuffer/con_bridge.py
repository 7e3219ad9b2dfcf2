"""ConBridge: a DBProxy in a child process, so a hung database call can be killed with its session.

Each call crosses a pipe (our own processes on both ends, so pickle is fine). A call that takes longer
than ``db_timeout`` gets its child SIGKILLed (the server session is terminated too, in case the
server has not noticed yet), the caller gets ``DBTimeout`` at once, and a fresh child boots in the
background for the next call. Children come from a forkserver: forking a threaded web worker is
unsafe, and the forkserver (itself single-threaded, with the DB modules preloaded) starts a warm,
connected child in 0.1-0.2 s where spawn needs a fresh interpreter and its imports (0.3-0.4 s more).

A child that dies on its own (kill -9, OOM killer, a crash in a driver) is supervised like every other
helper process (``pandasrv.supervisor.RestartPolicy``): the death is logged with its cause, the call it
was serving gets ``ConnectionLost`` (a retryable 503), a child found dead between calls is replaced before
the next call is sent (that call does not fail), and a child that keeps dying is restarted with backoff
(calls during the backoff get ``ConnectionLost`` at once) and reported at ERROR once per interval.
"""

from __future__ import annotations

import logging
import multiprocessing
import operator
import os
import pickle
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import TYPE_CHECKING, Any, Callable, Concatenate, ParamSpec, TypeVar, cast

from pandasrv import metrics
from pandasrv.supervisor import RestartPolicy
from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.file_spec import FILE_ATTRIBUTES, FileSpec
from pandasrv.taskbuffer.job_spec import ATTRIBUTES, JobSpec
from pandasrv.taskbuffer.spec import set_slots
from pandasrv.taskbuffer.store import Store

if TYPE_CHECKING:
    from pandasrv.config import Settings

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

# Imported once by the forkserver so that every child starts warm: this module and the drivers
# (psycopg alone takes ~0.1 s to import). Children still re-import the parent's main script as
# ``__mp_main__`` (the multiprocessing rule: a main script must be import-safe), except when it runs
# as ``python -m package``.
_PRELOAD = [
    __name__, "pandasrv.taskbuffer.drivers.sqlite", "pandasrv.taskbuffer.drivers.postgresql",
    "pandasrv.taskbuffer.drivers.mysql",
]

# The status-log reason of a claim given back because its caller died before the reply (pandasrv.logic.claims).
UNDELIVERED_REASON = "the getJob reply was not delivered ({exc} on the ConBridge pipe); attempt counted"

# Seconds to wait for a child to go after a polite stop, before SIGKILL.
_STOP_GRACE = 2.0

_context_lock = threading.Lock()
_context: Any = None


def _mp_context() -> Any:
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            _context = context
        return _context


# Jobs cross the pipe as plain value tuples: several times faster than their legacy pickle form
# (positional "NULL" states, decoded attribute by attribute), and exact. Only multiprocessing's pickler
# uses these reducers; pickle.dumps and the clients' pickles are unaffected.
_job_values = operator.attrgetter(*ATTRIBUTES)
_file_values = operator.attrgetter(*FILE_ATTRIBUTES)


def _rebuild(cls: type[S], names: tuple[str, ...], values: tuple[Any, ...]) -> S:
    spec = object.__new__(cls)
    set_slots(spec, names, values)
    return spec


def _rebuild_job(values: tuple[Any, ...], files: list[FileSpec]) -> JobSpec:
    job = _rebuild(JobSpec, ATTRIBUTES, values)
    job.Files = files
    return job


def _reduce_job(job: JobSpec) -> tuple[Any, ...]:
    return _rebuild_job, (_job_values(job), job.Files)


def _reduce_file(spec: FileSpec) -> tuple[Any, ...]:
    return _rebuild, (FileSpec, FILE_ATTRIBUTES, _file_values(spec))


ForkingPickler.register(JobSpec, _reduce_job)
ForkingPickler.register(FileSpec, _reduce_file)


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling (with the child's traceback as a note), else a DBError."""
    exc.add_note("in ConBridge child:\n" + "".join(traceback.format_exception(exc)).rstrip())
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return errors.DBError(f"{type(exc).__name__}: {exc}")


def _serve(conn: Connection, db_url: str, statement_timeout: float | None) -> None:
    """Child main loop: one call at a time until the parent closes the pipe or sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proxy = DBProxy(db_url, statement_timeout=statement_timeout)
    try:
        hello: tuple[bool, Any] = (True, proxy.session_id())
    except Exception as exc:
        hello = (False, _portable(exc))
    try:
        conn.send(hello)
    except OSError:  # the web worker was killed while its child started: nobody is waiting for it
        hello = (False, None)
    if not hello[0]:
        proxy.close()
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message is None:
            break
        name, args, kwargs = message
        try:
            reply = (True, getattr(proxy, name)(*args, **kwargs))
        except BaseException as exc:
            reply = (False, _portable(exc))
        try:
            conn.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            conn.send((False, errors.DBError(f"{name}: result cannot cross the ConBridge pipe: {exc}")))
        except OSError as exc:  # the caller is gone (its web worker was killed): nobody will read this reply
            _undelivered(proxy, name, reply, exc)
            break
    proxy.close()


def _undelivered(proxy: DBProxy, name: str, reply: tuple[bool, Any], exc: OSError) -> None:
    """A committed claim whose reply could not be handed back goes back to ``activated`` at once, rather
    than waiting for ``watcher.unconfirmed`` (see pandasrv.logic.claims); other calls have nothing to undo."""
    ok, value = reply
    if name != "claim_jobs" or not ok or not value:
        log.warning("ConBridge caller gone before the reply of %s: %r", name, exc)
        return
    claims = [(job.PandaID, job.attemptNr) for job in value]
    try:
        requeued = proxy.requeue_undelivered(claims, UNDELIVERED_REASON.format(exc=type(exc).__name__))
    except errors.DBError as db_exc:
        log.warning("could not give back %d undelivered claims (%s); recover_claims will: %s", len(claims), exc, db_exc)
        return
    log.warning("getJob reply lost (%s, caller gone): %d claims given back to activated: %s", type(exc).__name__,
                len(requeued), " ".join(map(str, requeued)))


def remote(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[ConBridge, P], R]:
    """ConBridge's form of a Store method: the same signature, run by the child's DBProxy."""
    name = method.__name__

    def call(self: ConBridge, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return cast(R, self._call(name, *args, **kwargs))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"DBProxy.{name} in the child process (see the Store protocol)."
    return call


class ConBridge:
    """Every Store method, called in a child process under ``db_timeout``."""

    def __init__(self, settings: Settings, *, statement_timeout: float | None = None) -> None:
        self.db_url: str = settings.db_url
        self.timeout: float = float(settings.db_timeout)
        self.statement_timeout = statement_timeout
        self._lock = threading.Lock()
        self._process: Any = None
        self._pipe: Connection | None = None
        self._session: int | None = None
        self._ready = False
        self._owner = os.getpid()
        self._replacing = False  # the next launch replaces a killed or dead child (counted as a restart)
        self._policy = RestartPolicy(name="ConBridge child", max_delay=5.0)

    # --- SessionStore -----------------------------------------------------------------------------------
    sleep = remote(Store.sleep)
    session_id = remote(Store.session_id)
    # --- JobStore ---------------------------------------------------------------------------------------
    insert_jobs = remote(Store.insert_jobs)
    claim_jobs = remote(Store.claim_jobs)
    requeue_undelivered = remote(Store.requeue_undelivered)
    requeue_unconfirmed = remote(Store.requeue_unconfirmed)
    update_job = remote(Store.update_job)
    update_jobs = remote(Store.update_jobs)
    set_job_status = remote(Store.set_job_status)
    get_job_status = remote(Store.get_job_status)
    peek_jobs = remote(Store.peek_jobs)
    kill_jobs = remote(Store.kill_jobs)
    reassign_jobs = remote(Store.reassign_jobs)
    insert_output_report = remote(Store.insert_output_report)
    lock_output_reports = remote(Store.lock_output_reports)
    delete_output_report = remote(Store.delete_output_report)
    unlock_output_report = remote(Store.unlock_output_report)
    # --- DaemonStore ------------------------------------------------------------------------------------
    acquire_lease = remote(Store.acquire_lease)
    renew_lease = remote(Store.renew_lease)
    release_lease = remote(Store.release_lease)
    sweep_jobs = remote(Store.sweep_jobs)
    jobs_in_status = remote(Store.jobs_in_status)
    set_file_guids = remote(Store.set_file_guids)
    finalise_jobs = remote(Store.finalise_jobs)
    dataset_file_states = remote(Store.dataset_file_states)
    set_dataset_status = remote(Store.set_dataset_status)
    mark_inputs_ready = remote(Store.mark_inputs_ready)
    purge_archived_jobs = remote(Store.purge_archived_jobs)
    purge_history = remote(Store.purge_history)
    purge_aged_rows = remote(Store.purge_aged_rows)
    release_work_locks = remote(Store.release_work_locks)
    get_lease_expiry = remote(Store.get_lease_expiry)
    update_site_starts = remote(Store.update_site_starts)
    record_daemon_run = remote(Store.record_daemon_run)
    daemon_runs = remote(Store.daemon_runs)
    # --- MetaStore --------------------------------------------------------------------------------------
    add_queue = remote(Store.add_queue)
    update_queue = remote(Store.update_queue)
    get_queue = remote(Store.get_queue)
    list_queues = remote(Store.list_queues)
    get_resource_types = remote(Store.get_resource_types)
    set_resource_type = remote(Store.set_resource_type)
    remove_resource_type = remote(Store.remove_resource_type)
    get_banned_users = remote(Store.get_banned_users)
    set_user_status = remote(Store.set_user_status)
    reserve_user_ids = remote(Store.reserve_user_ids)
    register_sandbox_file = remote(Store.register_sandbox_file)
    find_sandbox_file = remote(Store.find_sandbox_file)
    job_statistics = remote(Store.job_statistics)
    count_recent_sent = remote(Store.count_recent_sent)
    set_config_value = remote(Store.set_config_value)
    get_config_values = remote(Store.get_config_values)
    set_job_command = remote(Store.set_job_command)
    set_debug_mode = remote(Store.set_debug_mode)
    store_cache_file = remote(Store.store_cache_file)
    cache_file_info = remote(Store.cache_file_info)
    cache_file_chunk = remote(Store.cache_file_chunk)
    purge_cache_files = remote(Store.purge_cache_files)
    # --- SecretsStore -----------------------------------------------------------------------------------
    get_secret_row = remote(Store.get_secret_row)
    put_secret_row = remote(Store.put_secret_row)
    # --- HarvesterStore ---------------------------------------------------------------------------------
    harvester_heartbeat = remote(Store.harvester_heartbeat)
    list_harvester_instances = remote(Store.list_harvester_instances)
    update_workers = remote(Store.update_workers)
    relate_job_to_worker = remote(Store.relate_job_to_worker)
    set_worker_pilot_status = remote(Store.set_worker_pilot_status)
    get_max_worker_id = remote(Store.get_max_worker_id)
    get_workers = remote(Store.get_workers)
    report_worker_stats = remote(Store.report_worker_stats)
    get_worker_stats = remote(Store.get_worker_stats)
    add_harvester_command = remote(Store.add_harvester_command)
    acquire_harvester_commands = remote(Store.acquire_harvester_commands)
    acknowledge_harvester_commands = remote(Store.acknowledge_harvester_commands)
    list_harvester_commands = remote(Store.list_harvester_commands)
    sweep_queue = remote(Store.sweep_queue)
    add_harvester_dialogs = remote(Store.add_harvester_dialogs)
    add_service_metrics = remote(Store.add_service_metrics)
    list_harvester_dialogs = remote(Store.list_harvester_dialogs)
    list_service_metrics = remote(Store.list_service_metrics)
    set_target_slots = remote(Store.set_target_slots)
    get_target_slots = remote(Store.get_target_slots)
    # --- MonitorStore -----------------------------------------------------------------------------------
    monitor_job_counts = remote(Store.monitor_job_counts)
    monitor_list_jobs = remote(Store.monitor_list_jobs)
    monitor_state_timeline = remote(Store.monitor_state_timeline)
    monitor_queue_changes = remote(Store.monitor_queue_changes)
    monitor_recent_errors = remote(Store.monitor_recent_errors)
    monitor_status_history = remote(Store.monitor_status_history)
    monitor_leases = remote(Store.monitor_leases)
    monitor_site_data = remote(Store.monitor_site_data)

    @property
    def pid(self) -> int | None:
        """The child's process id, None while no child runs."""
        return self._process.pid if self._process is not None else None

    @property
    def session(self) -> int | None:
        """The child's database session id (see DBProxy.session_id), once it has connected."""
        return self._session

    def start(self) -> None:
        """Launch a child now, without waiting for it to connect (the first call waits): a warm pool."""
        with self._lock:
            if self._current_process() is None:
                self._launch()

    def ping(self) -> bool:
        try:
            return bool(self._call("ping"))
        except errors.DBError as exc:
            log.info("ConBridge ping failed: %s", exc)
            return False

    def close(self) -> None:
        """Stop the child (politely, then SIGKILL); a later call starts a new one."""
        with self._lock:
            process, pipe = self._current_process(), self._pipe
            self._process = self._pipe = self._session = None
            if process is None or pipe is None:
                return
            try:
                pipe.send(None)
            except OSError:
                pass
            process.join(_STOP_GRACE)
            if process.is_alive():
                process.kill()
                process.join()
            pipe.close()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        metrics.CONBRIDGE_CALLS.inc()
        with self._lock:
            pipe = self._connected_pipe()
            try:
                pipe.send((name, args, kwargs))
                if not pipe.poll(self.timeout):
                    metrics.CONBRIDGE_TIMEOUTS.inc()
                    self._kill(terminate_session=True)
                    self._relaunch()
                    raise errors.DBTimeout(f"{name} took longer than db_timeout={self.timeout:g}s; its DB session was killed")
                ok, value = pipe.recv()
            except (EOFError, OSError) as exc:
                self._died(terminate_session=True)
                raise errors.ConnectionLost(f"ConBridge child died during {name}: {exc!r}") from None
        if ok:
            return value
        raise value

    def _current_process(self) -> Any:
        """The child, forgetting one inherited through a fork (it belongs to the parent process)."""
        if self._owner != os.getpid():
            self._process = self._pipe = self._session = None
            self._owner = os.getpid()
        return self._process

    def _launch(self) -> None:
        if self._replacing:
            metrics.CONBRIDGE_RESTARTS.inc()
            self._replacing = False
        parent_end, child_end = _mp_context().Pipe()
        process = _mp_context().Process(
            target=_serve, args=(child_end, self.db_url, self.statement_timeout), name="pandasrv-conbridge", daemon=True
        )
        process.start()
        child_end.close()
        self._process, self._pipe, self._ready = process, parent_end, False
        self._policy.on_start()

    def _relaunch(self) -> None:
        """Boot the replacement of a killed child while the caller handles the error (best effort)."""
        try:
            self._launch()
        except OSError as exc:
            log.warning("could not start a ConBridge child now, the next call will retry: %s", exc)

    def _connected_pipe(self) -> Connection:
        """The pipe to a child that has connected to the database, launching and waiting as needed."""
        process = self._current_process()
        if process is not None and self._idle_child_died():  # replace it before sending this call
            self._died(terminate_session=True)
            process = None
        if process is None:
            if not self._policy.may_start():
                raise errors.ConnectionLost(f"ConBridge child keeps dying; next start in "
                                            f"{self._policy.not_before - time.monotonic():.1f} s")
            self._launch()
        pipe = self._pipe
        if pipe is None:  # only if _launch failed to set it
            raise errors.ConnectionLost("ConBridge child is not running")
        if self._ready:
            return pipe
        try:
            if not pipe.poll(self.timeout):
                raise errors.DBTimeout(f"ConBridge child did not connect within db_timeout={self.timeout:g}s")
            ok, value = pipe.recv()
        except (EOFError, OSError) as exc:
            self._died(terminate_session=False)
            raise errors.ConnectionLost(f"ConBridge child died while connecting: {exc!r}") from None
        except errors.DBTimeout:
            self._kill(terminate_session=False)
            raise
        if not ok:
            self._kill(terminate_session=False)
            raise value
        self._session, self._ready = value, True
        return pipe

    def _idle_child_died(self) -> bool:
        """Whether the child died since its last reply: a connected child's pipe has nothing to read between
        calls unless it was closed (at exit, before the forkserver has even reaped it)."""
        pipe, process = self._pipe, self._process
        if pipe is None or process is None:
            return True
        try:
            return (self._ready and pipe.poll()) or not process.is_alive()
        except OSError:
            return True

    def _died(self, *, terminate_session: bool) -> None:
        """A child that died on its own: reap it, record the death (logged; backoff and alarm), end its session."""
        process = self._process
        self._kill(terminate_session=terminate_session)
        self._policy.on_death(process.exitcode if process is not None else None)

    def _kill(self, *, terminate_session: bool) -> None:
        """SIGKILL the child; then end its server session, which may outlive it until the server notices."""
        process, pipe, session = self._process, self._pipe, self._session
        self._process = self._pipe = self._session = None
        self._ready = False
        self._replacing = True
        if process is not None:
            process.kill()
            process.join()
        if pipe is not None:
            pipe.close()
        if terminate_session and session is not None:
            self._terminate(session)

    def _terminate(self, session: int) -> None:
        proxy = DBProxy(self.db_url)
        try:
            if proxy.backend != "sqlite" and proxy.terminate_session(session):
                log.info("terminated DB session %s of a killed ConBridge child", session)
        except errors.DBError as exc:
            log.warning("could not terminate DB session %s: %s", session, exc)
        finally:
            proxy.close()


if TYPE_CHECKING:
    _implements_store: type[Store] = ConBridge
