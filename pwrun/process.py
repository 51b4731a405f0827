"""Local processes: the ones pwrun starts (known by pid AND start time, as a pid is reused),
and pwrun's own handling of SIGINT and SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pwrun.console import err

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
INTERRUPTED = 130  # a shell's exit code after SIGINT: pwrun's after Ctrl-C or SIGTERM
T = TypeVar("T")
R = TypeVar("R")


def wait_until(condition: Callable[[], T], timeout: float, interval: float = 0.02) -> T:
    """Call `condition` until it returns something truthy or `timeout` seconds pass; return
    its last answer (falsy when time ran out)."""
    deadline = time.monotonic() + timeout
    while not (answer := condition()) and time.monotonic() < deadline:
        time.sleep(interval)
    return answer


def run_each(tasks: Iterable[T], work: Callable[[T], R], at_most: int = 8) -> list[R]:
    """`work` on every task, `at_most` at a time, results in task order; the first error (in
    task order) is raised here. Plain daemon threads, not a ThreadPoolExecutor: teardown runs
    this at interpreter exit too (a session a notebook left open), where concurrent.futures
    refuses new work; and a request hung past its caller's deadline keeps no process alive."""
    tasks = list(tasks)
    if len(tasks) <= 1:
        return [work(task) for task in tasks]
    results: list[R | None] = [None] * len(tasks)
    failures: dict[int, BaseException] = {}
    pending = iter(range(len(tasks)))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = next(pending, None)
            if index is None:
                return
            try:
                results[index] = work(tasks[index])
            except BaseException as exc:  # re-raised in the caller's thread below
                failures[index] = exc

    threads = [
        threading.Thread(target=worker, daemon=True, name="pwrun-each")
        for _ in range(min(at_most, len(tasks)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[min(failures)]
    return results  # type: ignore[return-value]  # every slot is filled when nothing failed


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3 onwards); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _running_stat(pid: int) -> list[str] | None:
    """Those fields while the process runs: None when it is gone or a zombie."""
    fields = _stat_fields(pid)
    return None if fields is None or fields[0] == "Z" else fields


def running(pid: int) -> bool:
    """Whether some process `pid` runs (not a zombie); ProcessRef.alive also knows which."""
    return _running_stat(pid) is not None


@dataclass(frozen=True)
class ProcessRef:
    """A process as it was when recorded: its pid and its start time in clock ticks."""

    pid: int
    started: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        """The running process `pid` (this process when pid is os.getpid())."""
        fields = _stat_fields(pid)
        if fields is None:
            raise ProcessLookupError(pid)
        return cls(pid, int(fields[19]))  # field 22: starttime

    @classmethod
    def current(cls) -> ProcessRef:
        return cls.of(os.getpid())

    def alive(self) -> bool:
        """True while this very process runs (not a zombie, not a later one with its pid)."""
        fields = _running_stat(self.pid)
        return fields is not None and int(fields[19]) == self.started

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; nothing if it is already gone."""
        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 1.0)):
            if not self.alive():
                return
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                return
            wait_until(lambda: not self.alive(), wait)


_hosted = 0  # open hosted() blocks
_hosting = threading.Lock()


@contextlib.contextmanager
def hosted() -> Iterator[None]:
    """While open, pwrun installs no signal handler: its host (a Jupyter kernel, a program using
    pwrun.session) owns SIGINT and SIGTERM, and its KeyboardInterrupt stops pwrun's work the way
    any exception does, through teardown."""
    global _hosted
    with _hosting:
        _hosted += 1
    try:
        yield
    finally:
        with _hosting:
            _hosted -= 1


def owns_signals() -> bool:
    """Whether pwrun may handle signals here: on the main thread, outside hosted()."""
    return threading.current_thread() is threading.main_thread() and not _hosted


def _install(handler: Callable[[int, Any], None]) -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)


@contextlib.contextmanager
def _handlers(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """`handler` for SIGINT and SIGTERM for a while (where pwrun owns signals; else a no-op)."""
    if not owns_signals():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    _install(handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def signals_deferred() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM only set the yielded event, for a loop that polls it and stops
    cleanly (ansible-runner's cancel_callback); KeyboardInterrupt afterwards if one came."""
    event = threading.Event()
    with _handlers(lambda signum, frame: event.set()):
        yield event
    if event.is_set():
        raise KeyboardInterrupt("interrupted")


class Interrupts:
    """SIGINT and SIGTERM stop a run the way Ctrl-C does: through its teardown.

    The first one raises KeyboardInterrupt; later ones, and any that arrive while the run is
    tearing down, are noted and do not cut the teardown short. pwrun's children run in
    sessions of their own, so a terminal's Ctrl-C (sent to the whole process group) reaches
    pwrun alone and teardown finds them alive.
    """

    def __init__(self) -> None:
        self._told = False

    def install(self) -> None:
        """Handle SIGINT and SIGTERM from now on (where pwrun owns signals; else a no-op)."""
        if owns_signals():
            _install(self._raise)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Teardown: signals are noted, not obeyed."""
        with _handlers(self._note):
            yield

    def _raise(self, signum: int, frame: object) -> None:
        _install(self._note)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def _note(self, signum: int, frame: object) -> None:
        if not self._told:
            self._told = True
            err.print("interrupted: tearing down, this takes a few seconds", highlight=False)
