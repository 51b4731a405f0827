"""Every assumption pwrun makes about Parsl's internals, in one place.

Each name below says what it relies on; tests/unit/test_parsl_compat.py checks each one against
the installed Parsl, so an upgrade that breaks an assumption fails one named test. Other pwrun
modules use these names and never reach into Parsl's private parts themselves.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import inspect
import os
import re
import shlex
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from string import Template
from types import FunctionType
from typing import Any

import parsl
import zmq
import zmq.auth
from parsl import DataFlowKernel
from parsl.app.bash import remote_side_bash_executor
from parsl.app.errors import RemoteExceptionWrapper, wrap_error
from parsl.config import Config
from parsl.data_provider.files import File
from parsl.dataflow.dflow import DataFlowKernelLoader
from parsl.errors import NoDataFlowKernelError
from parsl.executors import HighThroughputExecutor
from parsl.executors.base import ParslExecutor
from parsl.executors.errors import ExecutorError
from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost
from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD
from parsl.executors.status_handling import BlockProviderExecutor
from parsl.jobs.states import JobState, JobStatus
from parsl.providers import TorqueProvider
from parsl.providers.errors import SchedulerMissingArgs
from parsl.providers.torque.torque import translate_table
from parsl.utils import get_std_fname_mode

from pwrun.console import warn
from pwrun.errors import PwrunError

# Releases whose internals this module was checked against (the test suite passes on each).
SUPPORTED_PARSL = ("2026.10.5", "2026.10.12", "2026.10.19", "2026.10.26")
ALLOW_ENV = "PWRUN_ALLOW_PARSL"


class UnsupportedParsl(PwrunError):
    """The installed Parsl is not one pwrun knows, or lacks something pwrun relies on."""


def supported() -> str:
    """The supported releases, for messages."""
    return "parsl " + ", ".join(SUPPORTED_PARSL)


def release(version: str) -> tuple[str, ...]:
    """`version` without leading zeros: Parsl's own "2026.10.05" is PyPI's "2026.10.5"."""
    return tuple(part.lstrip("0") or "0" for part in version.split("."))


def check_parsl_version(version: str, allow: bool) -> None:
    """Refuse a Parsl outside SUPPORTED_PARSL, or only warn when `allow` (PWRUN_ALLOW_PARSL=1)."""
    if release(version) in map(release, SUPPORTED_PARSL):
        return
    installed = f"parsl {version} is installed; pwrun supports {supported()}"
    if not allow:
        raise UnsupportedParsl(
            f"{installed}: pip install parsl=={SUPPORTED_PARSL[-1]}, or set {ALLOW_ENV}=1 to "
            "try this one"
        )
    warn(f"{installed} ({ALLOW_ENV}=1: trying it anyway)")


check_parsl_version(parsl.__version__, os.environ.get(ALLOW_ENV) == "1")


# --- providers ------------------------------------------------------------------------------


class SchedulerSeams(ABC):
    """Parsl's hooks through which a cluster provider reaches its scheduler; mix in first.

    Relies on: every scheduler command (sbatch, squeue/sacct, scancel, and the `sacct -X` probe
    in SlurmProvider.__init__) going through ``ClusterProvider.execute_wait(cmd, timeout)``,
    which returns (returncode, stdout, stderr); submit scripts being written by the private
    ``ClusterProvider._write_submit_script(template, script_filename, job_name, configs)``
    (a string.Template given $jobname and `configs`); the DFK setting ``script_dir`` to a local
    directory under which script files and #SBATCH --output/--error paths are named.
    Subclasses implement `scheduler_command` and `write_script`.
    """

    # set by Parsl's ClusterProvider; declared for the type checker
    label: str
    script_dir: str | None
    cmd_timeout: int

    @abstractmethod
    def scheduler_command(self, cmd: str, timeout: float) -> tuple[int, str, str]:
        """Run a scheduler command; a failure to run it at all is (-1, "", why)."""

    @abstractmethod
    def write_script(self, script_filename: str, script: str) -> None:
        """Write a block's submit script, already filled in, to `script_filename`."""

    def execute_wait(self, cmd: str, timeout: float | None = None) -> tuple[int, str, str]:
        return self.scheduler_command(cmd, self.cmd_timeout if timeout is None else timeout)

    def _write_submit_script(
        self, template: str, script_filename: str, job_name: str, configs: dict[str, Any]
    ) -> None:
        try:
            script = Template(template).substitute(jobname=job_name, **configs)
        except KeyError as exc:
            raise SchedulerMissingArgs(exc.args, self.label) from None
        self.write_script(script_filename, script)


# The PBS family's providers (TorqueProvider, and PBSProProvider, its subclass).
# Relies on: both submitting with `qsub [-q Q] [-A A] <script>` through execute_wait and taking
# the last non-empty line of its output as the job id; keeping their jobs in `resources` (job
# id -> {"status": JobStatus, ...}), which `status()` reads after `_status()` has updated it;
# TorqueProvider's `translate_table` from qstat's state letters; cancelling with `qdel <ids>`.


def qstat_states(output: str, job_ids: list[str]) -> dict[str, str]:
    """Each job's state letter in `qstat <ids>`'s table (Torque's, PBS Pro's default and the
    Slurm Torque wrappers'): `Job id  Name  User  Time  S  Queue` rows after a line of dashes.

    Torque truncates long ids, so a row names the job whose id starts with it, but an exact id
    wins: Parsl's own parse takes the first id with that prefix, which for the bare numeric ids
    of the Slurm wrappers gives job 1's row to job 12.
    """
    states: dict[str, str] = {}
    rows = output.splitlines()
    start = next((i + 1 for i, line in enumerate(rows) if line.startswith("---")), len(rows))
    for line in rows[start:]:
        fields = line.split()
        if len(fields) < 5:
            continue
        shown = fields[0]
        if shown in job_ids:
            states[shown] = fields[4]
        elif len(matching := [j for j in job_ids if j.startswith(shown)]) == 1:
            states[matching[0]] = fields[4]
    return states


def set_job_states(provider: TorqueProvider, states: dict[str, str]) -> None:
    """Record qstat's states in a PBS-family provider; a job qstat no longer lists has ended
    (as Parsl's own parse decides)."""
    for job_id, job in provider.resources.items():
        state = translate_table.get(states[job_id], JobState.UNKNOWN) if job_id in states else None
        job["status"] = JobStatus(state or JobState.COMPLETED)


# --- executors ------------------------------------------------------------------------------

# Parsl starts the interchange in pwrun's process group, where a terminal's Ctrl-C (sent to the
# whole group) would kill it before pwrun's teardown. It gets a session of its own instead.
# Relies on: HTEX's `interchange_launch_cmd` being started with Popen (configuration on stdin),
# `interchange.py` being on PATH, and Parsl stopping it by the Popen's pid (setsid, then exec:
# the same pid).
INTERCHANGE_LAUNCH_CMD = (
    sys.executable, "-c", "import os, sys; os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])",
    "interchange.py",
)  # fmt: skip

# The fields of HTEX's DEFAULT_LAUNCH_CMD that a remote site's workers need changed.
LAUNCH_FIELDS = ("-a {addresses}", "--port={worker_port}", "--cert_dir {cert_dir}",
                 "--logconf={logconf}")  # fmt: skip


def worker_launch_cmd(address: str, port: int, cert_dir: str) -> str:
    """Parsl's worker command, told `address`:`port` and `cert_dir` instead of Parsl's own.

    Relies on: DEFAULT_LAUNCH_CMD holding each of LAUNCH_FIELDS; HTEX filling in the rest with
    str.format twice, at start and per block (a literal brace is written four times); the
    command being shell text (`cert_dir` is quoted); `--logconf=None` meaning the worker's own
    logging (Parsl's logconf file is local).
    """
    values = (f"-a {address}", f"--port={port}", f"--cert_dir {shlex.quote(cert_dir)}",
              "--logconf=None")  # fmt: skip
    cmd = DEFAULT_LAUNCH_CMD
    for old, new in zip(LAUNCH_FIELDS, values, strict=True):
        if old not in cmd:
            raise UnsupportedParsl(
                f"parsl {parsl.__version__}: the worker command has no {old!r}; pwrun "
                f"supports {supported()}"
            )
        cmd = cmd.replace(old, new.replace("{", "{{{{").replace("}", "}}}}"))
    return cmd


def use_certificates(executor: HighThroughputExecutor, cert_dir: str) -> None:
    """Make an encrypted HTEX use existing certificates instead of making its own.

    Relies on: `cert_dir` being an attribute (not a constructor argument) that HTEX.start reads,
    making certificates only while it is None.
    """
    executor.cert_dir = cert_dir  # type: ignore[assignment]  # Parsl declares it as None


def interchange_pids(dfk: DataFlowKernel) -> list[int]:
    """The pids of the DFK's running interchanges (HTEX's `interchange_proc`, a Popen)."""
    return [
        executor.interchange_proc.pid
        for executor in dfk.executors.values()
        if isinstance(executor, HighThroughputExecutor) and executor.interchange_proc
    ]


# --- tasks as an executor sees them --------------------------------------------------------
# Relies on: the DFK calling `executor.submit(func, resource_specification, *args, **kwargs)`
# once per try, on the executor that try runs on, with DataFutures already replaced by their
# File, every `inputs`/`outputs` File a fresh copy (`cleancopy`) the app reads or writes through
# `filepath` (`local_path` when set), and stdout/stderr already a path (AUTO_LOGNAME resolved)
# or a File.


def is_bash_app(func: Callable[..., Any]) -> bool:
    """True if `func` is a bash_app's task function.

    Relies on: BashApp submitting `wrap_error(partial(remote_side_bash_executor, f))`, whose
    wrappers (monitoring's too) use functools.wraps.
    """
    return bash_command(func) is not None


def bash_command(func: Callable[..., Any]) -> Callable[..., Any] | None:
    """A bash_app task function's `f`, which returns its command line; None for other apps.

    Relies on: what `is_bash_app` does.
    """
    inner = inspect.unwrap(func)
    if isinstance(inner, functools.partial) and inner.func is remote_side_bash_executor:
        return inner.args[0]
    return None


# --- timeouts -------------------------------------------------------------------------------


def by_value(function: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of `function` that Parsl's serializer sends as code, not as a reference to a
    module the worker may lack (sites have Parsl, not pwrun). `function` must import what it
    uses inside its body.

    Relies on: Parsl serializing callables with dill, which pickles a function of module
    `__main__` by value, with its (here empty) globals.
    """
    copy = FunctionType(function.__code__, {"__builtins__": builtins}, function.__name__,
                        function.__defaults__)  # fmt: skip
    copy.__module__, copy.__qualname__ = "__main__", function.__qualname__
    return copy


def time_limited(func: Callable[..., Any], seconds: float, label: str) -> Callable[..., Any]:
    """`func`, an app's task function, made to fail with AppTimeout naming the app and `label`
    once it has run for `seconds` on the worker (see `run_limited`).

    Relies on: the task function's result being the app's result or a RemoteExceptionWrapper
    (`wrap_error`), which is what `run_limited` returns too.
    """
    name = getattr(bash_command(func) or func, "__name__", "app")
    limited = functools.partial(LIMITED, func, seconds, label, name)
    return functools.update_wrapper(wrap_error(limited), func)


def run_limited(
    func: Callable[..., Any], seconds: float, label: str, name: str, *args: Any, **kwargs: Any
) -> Any:
    """On the worker: run a task function for at most `seconds` from now.

    At the deadline every process the app started (the worker's descendants: a bash_app's
    shell and all it ran) gets SIGTERM, and SIGKILL 2 s later if still there; a python_app
    gets AppTimeout raised by a SIGALRM handler (in a worker's main thread; elsewhere by
    Parsl's own walltime mechanism). The result is then a RemoteExceptionWrapper of AppTimeout
    naming the app (`name`) and `label`, returned once those processes are gone.

    Relies on: the app running in the worker process, its processes as the worker's
    descendants (remote_side_bash_executor's bash is a child); task functions returning a
    RemoteExceptionWrapper for an exception (`wrap_error`); parsl.app.python.timeout.
    """
    import contextlib
    import os
    import signal
    import sys
    import threading
    import time

    from parsl.app.errors import AppTimeout, RemoteExceptionWrapper
    from parsl.app.python import timeout

    start = time.monotonic()
    message = (
        f"app {name} on label {label} timed out after {seconds:g} s of execution: killed, "
        "with the processes it started"
    )

    def descendants() -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        found, todo = [], list(children.get(os.getpid(), []))
        while todo:
            found.append(todo.pop())
            todo += children.get(found[-1], [])
        return found

    def stop(grace: float = 2.0) -> None:
        # taken once: a process whose parent dies is no longer the worker's descendant
        pids = descendants()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = list(dict.fromkeys(pids + descendants()))
            for pid in pids:
                with contextlib.suppress(OSError):  # gone meanwhile
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and not all(map(zombie, pids)):
                time.sleep(0.05)

    def zombie(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    def expire(signum: int, frame: Any) -> None:
        raise AppTimeout(message)

    watchdog = threading.Timer(seconds, stop)
    watchdog.daemon = True
    main = threading.current_thread() is threading.main_thread()
    if main:
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    watchdog.start()
    try:
        result = func(*args, **kwargs) if main else timeout(func, seconds)(*args, **kwargs)
    finally:
        watchdog.cancel()
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if isinstance(result, RemoteExceptionWrapper) and time.monotonic() - start >= seconds:
        watchdog.join()
        stop(grace=0.5)  # whatever the app left, also when its own walltime struck first
        try:
            raise AppTimeout(message)
        except AppTimeout:
            return RemoteExceptionWrapper(*sys.exc_info())
    return result


LIMITED = by_value(run_limited)


def std_stream(name: str, spec: Any) -> tuple[str, str]:
    """A bash_app's stdout/stderr argument as (path, mode).

    Relies on: `remote_side_bash_executor` opening a File with mode "w", and anything else as
    `parsl.utils.get_std_fname_mode` says (a path: "a+"; a (path, mode) tuple: that mode).
    """
    if isinstance(spec, File):
        return spec.filepath, "w"
    return get_std_fname_mode(name, spec)


def app_failed(result: object) -> bool:
    """True if an HTEX task's result is the app's exception.

    Relies on: apps' exceptions coming back as a RemoteExceptionWrapper result (`wrap_error`),
    which the DFK re-raises.
    """
    return isinstance(result, RemoteExceptionWrapper)


# --- failover -------------------------------------------------------------------------------

# Failures of the infrastructure, not of the app: HTEX's lost manager (missed heartbeats) or
# worker, and an executor's own errors (BadStateException when its blocks failed or it was
# failed by `fail_executor`).
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (ManagerLost, WorkerLost, ExecutorError)


def infrastructure_failure(exc: BaseException, executor: ParslExecutor | None) -> bool:
    """True if a try failed because of where it ran, not because of the app.

    Relies on: the app's own exceptions reaching the retry handler re-raised from a
    RemoteExceptionWrapper (their own types), infrastructure failures as the exception set on
    the executor's future (INFRASTRUCTURE_ERRORS), and an executor in bad state raising its
    `executor_exception` from `submit`.
    """
    if isinstance(exc, INFRASTRUCTURE_ERRORS):
        return True
    return (
        isinstance(executor, BlockProviderExecutor)
        and executor.bad_state_is_set
        and exc is executor.executor_exception
    )


def fail_executor(executor: ParslExecutor, exc: Exception) -> None:
    """Fail every task `executor` holds with `exc` (wrapped in BadStateException) and make its
    `submit` raise `exc` from now on; its blocks are no longer scaled.

    Relies on: BlockProviderExecutor.set_bad_state_and_fail_all, and the strategy skipping an
    executor in bad state.
    """
    if isinstance(executor, BlockProviderExecutor) and not executor.bad_state_is_set:
        executor.set_bad_state_and_fail_all(exc)


def task_id(task: Any) -> int:
    """A DFK task record's id (`task['id']`)."""
    return int(task["id"])


def task_app(task: Any) -> str:
    """The app's name in a task record (`task['func_name']`)."""
    return str(task["func_name"])


def task_label(task: Any) -> str:
    """The label a task record's last try ran on (`task['executor']`)."""
    return str(task["executor"])


def move_task(task: Any, label: str) -> None:
    """Make a task's next try run on `label`.

    Relies on: the DFK launching each try on `task['executor']`, read at launch (a retry
    handler may change it; the DFK calls the handler before it relaunches).
    """
    task["executor"] = label


# --- certificates ---------------------------------------------------------------------------

CLIENT_KEY = "client.key_secret"
SERVER_KEY = "server.key_secret"


def site_server_key(cert_dir: Path) -> str:
    """server.key_secret for a site: the run's server PUBLIC key and a throwaway secret key.

    Relies on: workers loading "<dir>/server.key_secret" and "<dir>/client.key_secret"
    (`curvezmq._load_certificate`), which demands a secret-key line in the server's file
    although a client uses only its public key.
    """
    server_public, _ = zmq.auth.load_certificate(cert_dir / SERVER_KEY)
    _, throwaway = zmq.curve_keypair()
    return (
        "# the run's server public key; the secret key is a throwaway, not the server's\n"
        f'metadata\ncurve\n    public-key = "{server_public.decode()}"\n'
        f'    secret-key = "{throwaway.decode()}"\n'
    )


# --- the DataFlowKernel ---------------------------------------------------------------------

INTERNAL_EXECUTOR = "_parsl_internal"  # the DFK's own executor, never an app's
INVALID_EXECUTOR = re.compile(r"requested invalid executor (\S+)")


def invalid_executor(exc: BaseException) -> str | None:
    """The label an app asked for that the DFK does not have, if `exc` says so.

    Relies on: the DFK raising ValueError("Task N requested invalid executor LABEL").
    """
    match = INVALID_EXECUTOR.search(str(exc))
    return match[1] if match else None


def executor_labels(dfk: DataFlowKernel) -> list[str]:
    """`dfk`'s executor labels that apps may name (Parsl's internal one left out)."""
    return [label for label in dfk.executors if label != INTERNAL_EXECUTOR]


def config_defaults() -> dict[str, Any]:
    """Config's settings, each with its default.

    Relies on: every parameter of Config.__init__ being kept as the attribute of that name
    (`executors` a read-only property), so that a Config can be made from another's attributes.
    """
    parameters = inspect.signature(Config.__init__).parameters
    return {name: p.default for name, p in parameters.items() if name != "self"}


@contextlib.contextmanager
def loads_on_demand(
    own: Config,
    build: Callable[[Config | None], Config],
    started: Callable[[DataFlowKernel], None],
    shield: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
) -> Iterator[list[DataFlowKernel]]:
    """While open, the workflow's `parsl.load(config)` loads `build(config)`; its `parsl.load()`,
    `parsl.load(own)`, or its first app invoked before any load, loads `build(None)`. A load
    while that DFK is loaded returns it for the same config, or none; another config fails as
    in Parsl. `started` is told of each DFK. Yields the DFKs loaded so far. On exit (inside
    `shield`), those the workflow did not clean up (`with parsl.load(...)` does) are cleaned up.

    Relies on: workflows reaching the loader through `parsl.load`/`parsl.dfk` or
    DataFlowKernelLoader's `load`/`dfk`, which pwrun replaces for the run; apps invoked without
    a DFK asking `DataFlowKernelLoader.dfk()`, which raises NoDataFlowKernelError when none is
    loaded; a DFK's `cleanup()` unloading it and setting `cleanup_called`.
    """
    loaded_dfk, load_config = DataFlowKernelLoader.dfk, DataFlowKernelLoader.load
    dfks: list[DataFlowKernel] = []
    sources: list[Config | None] = []  # what the workflow gave each load
    lock = threading.RLock()  # apps may be invoked from several threads

    def load(given: Config | None = None) -> DataFlowKernel:
        given = None if given is own else given
        with lock:
            try:
                current = loaded_dfk()
            except NoDataFlowKernelError:
                dfks.append(load_config(build(given)))
                sources.append(given)
                started(dfks[-1])
                return dfks[-1]
            if dfks and current is dfks[-1] and given in (None, sources[-1]):
                return current
            return load_config(given)  # Parsl's "Config has already been loaded"

    def dfk() -> DataFlowKernel:
        with lock:
            return load() if not dfks else loaded_dfk()

    # `parsl.load` and `parsl.dfk` are DataFlowKernelLoader's classmethods, bound at import
    replacements = {"load": load, "dfk": dfk}
    originals = {name: (vars(DataFlowKernelLoader)[name], getattr(parsl, name))
                 for name in replacements}  # fmt: skip
    for name, replacement in replacements.items():
        setattr(DataFlowKernelLoader, name, staticmethod(replacement))
        setattr(parsl, name, replacement)
    try:
        yield dfks
    finally:
        with shield():
            for name, (method, function) in originals.items():
                setattr(DataFlowKernelLoader, name, method)
                setattr(parsl, name, function)
            for each in dfks:
                if not each.cleanup_called:
                    each.cleanup()
            parsl.clear()
