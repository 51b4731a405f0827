"""Ranked failover: where a task goes after a try that failed.

An infrastructure failure (a lost manager or worker, a failed block, a site declared lost)
moves the task to the next label of its first label's `fallback` list whose site is not lost;
the move costs no retry. An exception raised by the app itself is retried on the same label,
as Parsl's `retries` says (or the workflow's own `retry_handler`), and never moved.

A site is lost when a lost manager is followed by an ssh probe that fails
(`PROBE_TIMEOUT`), when it is unreachable at start, or when something else declares it with
`Routing.site_lost(site, reason)` (the tunnel supervisor does after repeated reconnect
failures): every executor on it fails its outstanding tasks, which then move on, and takes no
more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from parsl.executors.base import ParslExecutor

from pwrun.console import warn
from pwrun.errors import InfrastructureError
from pwrun.parslcfg import compat
from pwrun.transport.ssh import SSHTarget

PROBE_TIMEOUT = 5.0  # seconds an ssh round trip may take before a site counts as unreachable
RetryHandler = Callable[[Exception, Any], float]


class SiteLost(Exception):
    """A site that pwrun gave up on: its tasks go to their fallbacks."""

    def __init__(self, site: str, reason: str) -> None:
        super().__init__(site, reason)
        self.site, self.reason = site, reason

    def __str__(self) -> str:
        return f"site {self.site} lost: {self.reason}"


class NoFallbackLeft(Exception):
    """A task's label (and every fallback) failed for infrastructure reasons."""


class Unreachable(ParslExecutor):
    """A label whose site was unreachable at start: every task given to it fails with `lost`,
    so that it moves to its fallback."""

    def __init__(self, label: str, lost: SiteLost) -> None:
        super().__init__()
        self.label, self.lost = label, lost

    def submit(self, func: Callable[..., Any], resource_specification: dict[str, Any],
               *args: Any, **kwargs: Any) -> Future[Any]:  # fmt: skip
        raise self.lost

    def shutdown(self) -> None:
        super().shutdown()

    def __repr__(self) -> str:
        return f"Unreachable(label={self.label!r}, lost={str(self.lost)!r})"


class Routing:
    """The run's retry handler and lost-site registry.

    `fallbacks`: per label, its fallback labels in order; `sites`: per label, its site and
    how to reach it over ssh (None for this machine); `retries`: the run's own (None: the
    workflow's). `handler`, the workflow's own retry_handler (set when its Config is merged), is
    asked about every failure that does not move the task.
    """

    def __init__(
        self,
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        sites: Mapping[str, tuple[str, SSHTarget | None]] | None = None,
        retries: int | None = None,
        probe_timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self.fallbacks = {label: list(chain) for label, chain in (fallbacks or {}).items()}
        self.sites = dict(sites or {})
        self.retries = retries
        self.handler: RetryHandler | None = None
        self.probe_timeout = probe_timeout
        self.lost: dict[str, SiteLost] = {}
        self.executors: dict[str, ParslExecutor] = {}
        self.origins: dict[int, str] = {}  # task id -> the label it was first sent to
        self.probing: set[str] = set()
        self.lock = threading.Lock()

    def use(self, executors: Sequence[ParslExecutor]) -> None:
        """Route between these executors (a new DFK's); those on lost sites fail at once."""
        with self.lock:
            self.executors = {executor.label: executor for executor in executors}
            lost = [(e, self.lost[site]) for e in executors if (site := self.site(e.label))
                    and site in self.lost]  # fmt: skip
        for executor, why in lost:
            compat.fail_executor(executor, why)

    def lost_labels(self) -> set[str]:
        """The labels whose site is lost."""
        return {label for label, (site, _) in self.sites.items() if site in self.lost}

    def site(self, label: str) -> str | None:
        return self.sites[label][0] if label in self.sites else None

    def site_lost(self, site: str, reason: str) -> None:
        """Give up on `site`: its executors fail their tasks (which move on) and take no more.
        Safe to call from any thread, more than once."""
        with self.lock:
            if site in self.lost:
                return
            self.lost[site] = lost = SiteLost(site, reason)
            executors = [e for label, e in self.executors.items() if self.site(label) == site]
        warn(f"{lost}: its tasks go to their fallbacks")
        for executor in executors:
            compat.fail_executor(executor, lost)

    def __call__(self, exc: Exception, task: Any) -> float:
        """Parsl's retry_handler: the cost of this failure, after moving the task if it was the
        infrastructure's."""
        label = compat.task_label(task)
        infrastructure = isinstance(exc, SiteLost) or compat.infrastructure_failure(
            exc, self.executors.get(label)
        )
        if not infrastructure:
            return self.handler(exc, task) if self.handler else 1
        origin = self.origins.setdefault(compat.task_id(task), label)
        target = self.next_label(origin, label)
        if target is not None:
            self.check_site(label, exc, wait=False)
            compat.move_task(task, target)
            return 0
        self.check_site(label, exc, wait=True)  # no move: say why the task failed
        site = self.site(label)
        if site in self.lost:
            chain = self.fallbacks.get(origin, [])
            left = f"its fallbacks {', '.join(chain)} failed too" if chain else "no fallback"
            raise NoFallbackLeft(
                f"app {compat.task_app(task)} on label {label}: {self.lost[site]} "
                f"({origin}: {left})"
            )
        return self.handler(exc, task) if self.handler else 1

    def next_label(self, origin: str, current: str) -> str | None:
        """The first label after `current` in `origin`'s chain whose site is not lost."""
        chain = [origin, *self.fallbacks.get(origin, [])]
        after = chain[chain.index(current) + 1 :] if current in chain else chain[1:]
        for label in after:
            if self.site(label) not in self.lost and label in self.executors:
                return label
        return None

    def check_site(self, label: str, exc: BaseException, wait: bool) -> None:
        """After a lost manager or worker, probe the label's site (in the background unless
        `wait`): if ssh cannot reach it either, the site is lost."""
        if label not in self.sites or isinstance(exc, SiteLost):
            return
        site, ssh = self.sites[label]
        with self.lock:
            if ssh is None or site in self.lost or site in self.probing:
                return
            self.probing.add(site)

        def probe() -> None:
            try:
                ssh.run("true", timeout=self.probe_timeout)
            except InfrastructureError as why:
                self.site_lost(site, f"unreachable over ssh after {type(exc).__name__} ({why})")
            finally:
                with self.lock:
                    self.probing.discard(site)

        if wait:
            probe()
        else:
            threading.Thread(target=probe, name=f"pwrun-probe-{site}", daemon=True).start()
