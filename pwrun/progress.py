"""A run's tasks as they go: counts per label and per app function from the DFKs' task records,
a live display during the workflow stage, and a summary table at the end of every run."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from datetime import datetime

from parsl import DataFlowKernel
from parsl.dataflow.futures import AppFuture
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pwrun.console import err
from pwrun.parslcfg import compat
from pwrun.runstate import RunRecord

COLUMNS = ("pending", "running", "done", "failed", "retried", "blocks", "workers")
ACTIVITY_EVERY = 1.0  # seconds between questions to the interchanges (blocks, workers)
KEPT_FAILURES = 20  # failure messages kept per app function
DRAIN_EVERY = 1000  # tasks that ended between two counts at most


@dataclasses.dataclass
class AppTally:
    """One app function's tasks that ended."""

    tasks: int = 0
    failed: int = 0
    retried: int = 0
    first: datetime | None = None  # the first call of one of its tasks
    last: datetime | None = None  # the end of the last to end
    labels: set[str] = dataclasses.field(default_factory=set)
    failures: list[str] = dataclasses.field(default_factory=list)  # the first KEPT_FAILURES

    @property
    def seconds(self) -> float:
        """From the first task's call to the last task's end."""
        return (self.last - self.first).total_seconds() if self.first and self.last else 0.0


class Tracker:
    """Every task of a run's DFKs, told by Parsl as each is submitted and as it ends (a retried
    task counts once, under the label of its last try). Parsl's threads only append to two
    queues; counting happens when counts are asked for (or every DRAIN_EVERY tasks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._submitted: deque[AppFuture] = deque()  # appended by the submitting thread
        self._ended: deque[AppFuture] = deque()  # appended by the thread that ends a task
        self._live: dict[int, AppFuture] = {}  # tasks not ended, by id() of their future
        self._counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
        self._apps: dict[str, AppTally] = defaultdict(AppTally)
        self.labels: list[str] = []  # the run's labels, in their DFKs' order
        self._dfks: list[DataFlowKernel] = []
        self._closed: set[int] = set()  # id() of DFKs cleaning up: their interchanges are going
        self._asking = threading.Lock()  # a question to interchanges; a DFK's cleanup waits
        self._activity: dict[str, tuple[int, int]] = {}
        self._asked = 0.0

    def attach(self, dfk: DataFlowKernel) -> None:
        """Follow `dfk`'s tasks and executors from now on."""
        self.labels += [label for label in compat.executor_labels(dfk) if label not in self.labels]
        self._dfks.append(dfk)
        compat.watch_tasks(dfk, self._submitted.append, self._task_ended,
                           lambda: self._closing(dfk))  # fmt: skip

    def _closing(self, dfk: DataFlowKernel) -> None:
        with self._asking:
            self._closed.add(id(dfk))

    def _task_ended(self, future: AppFuture) -> None:
        self._ended.append(future)
        if len(self._ended) >= DRAIN_EVERY:  # ended futures hold results: count them soon
            self._drain()

    def _drain(self) -> None:
        """Count the tasks told of so far. A task's end is queued after its submission, so the
        ends queued before the submissions are taken all belong to tasks taken here."""
        with self._lock:
            ends = len(self._ended)
            while self._submitted:
                future = self._submitted.popleft()
                self._live[id(future)] = future
            for _ in range(ends):
                future = self._ended.popleft()
                self._live.pop(id(future), None)
                self._count(compat.task_view(future), future.exception())

    def _count(self, task: compat.TaskView, exception: BaseException | None) -> None:
        counts = self._counts[task.label]
        counts[task.state] += 1
        counts["retried"] += task.retries > 0
        app = self._apps[task.app]
        app.tasks += 1
        app.retried += task.retries > 0
        if task.invoked and task.returned:
            app.first = min(app.first or task.invoked, task.invoked)
            app.last = max(app.last or task.returned, task.returned)
        app.labels.add(task.label)
        if exception is not None:
            app.failed += 1
            if len(app.failures) < KEPT_FAILURES:
                message = f"{type(exception).__name__}: {exception}"
                app.failures.append(f"task {task.id} on {task.label}: {message}")

    @property
    def apps(self) -> dict[str, AppTally]:
        """Per app function, its tasks that ended."""
        self._drain()
        return dict(self._apps)

    def activity(self) -> dict[str, tuple[int, int]]:
        """Blocks and connected workers per label, asked of the interchanges at most once per
        ACTIVITY_EVERY; a DFK that is cleaning up keeps its last answer."""
        with self._asking:
            if time.monotonic() - self._asked >= ACTIVITY_EVERY:
                for dfk in self._dfks:
                    if id(dfk) in self._closed:
                        continue
                    for label, executor in list(dfk.executors.items()):
                        with contextlib.suppress(Exception):  # an executor gone bad says so
                            if (found := compat.executor_activity(executor)) is not None:
                                self._activity[label] = found
                self._asked = time.monotonic()
            return dict(self._activity)

    def counts(self, activity: bool = True) -> dict[str, dict[str, int]]:
        """Per label (the run's labels, then any other that had tasks): tasks pending, running,
        done, failed and retried; with `activity`, its blocks and connected workers."""
        self._drain()
        with self._lock:
            live = [compat.task_view(future) for future in self._live.values()]
            table = {label: dict(self._counts[label]) for label in self.labels}
            table |= {label: dict(c) for label, c in self._counts.items() if label not in table}
        for task in live:
            row = table.setdefault(task.label, dict.fromkeys(COLUMNS, 0))
            row["running" if task.state == "running" else "pending"] += 1
        for label, (blocks, workers) in (self.activity() if activity else {}).items():
            if label in table:
                table[label] |= {"blocks": blocks, "workers": workers}
        return table


@dataclasses.dataclass
class Watch:
    """A run's progress display settings, its tasks as they end, and its record once made."""

    interval: float = 10.0  # seconds between plain progress lines (off a terminal); 0: none
    tracker: Tracker = dataclasses.field(default_factory=Tracker)
    record: RunRecord | None = None


def table(counts: dict[str, dict[str, int]], title: str, columns: tuple[str, ...]) -> Table:
    """Counts as a table, one row per label."""
    shown = Table("label", *columns, title=title, title_justify="left")
    for label, row in counts.items():
        shown.add_row(label, *(str(row[column]) for column in columns))
    return shown


def line(counts: dict[str, dict[str, int]], elapsed: float) -> str:
    """Counts as one plain line: `progress 12s: map pending=0 running=4 ... | gpu ...`."""
    labels = " | ".join(
        f"{label} " + " ".join(f"{column}={row[column]}" for column in COLUMNS)
        for label, row in counts.items()
    )
    return f"progress {elapsed:.0f}s: {labels or 'no labels yet'}"


@contextlib.contextmanager
def shown(tracker: Tracker, interval: float, console: Console = err) -> Iterator[None]:
    """While open: on a terminal, a live table of the tracker's counts; otherwise one plain line
    every `interval` seconds (none when `interval` is 0)."""
    started = time.monotonic()
    if console.is_terminal:

        def render() -> Table:
            return table(tracker.counts(), f"tasks, {time.monotonic() - started:.0f}s", COLUMNS)

        with Live(get_renderable=render, console=console, refresh_per_second=2, transient=True):
            yield
        return
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(interval):
            console.print(line(tracker.counts(), time.monotonic() - started), highlight=False,
                          markup=False)  # fmt: skip

    thread = threading.Thread(target=report, name="pwrun-progress", daemon=True)
    if interval > 0:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()


def print_summary(tracker: Tracker, console: Console = err) -> None:
    """The run's final counts per label: done, failed, retried."""
    counts = tracker.counts(activity=False)
    if counts:
        console.print(table(counts, "tasks", ("done", "failed", "retried")), highlight=False)
