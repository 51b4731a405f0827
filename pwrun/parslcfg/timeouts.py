"""Task timeouts counted from the start of execution, enforced on the worker.

A label's `task_timeout` is the default; an app's own `walltime` argument wins. On expiry the
app is killed with the processes it started (a bash_app's whole process group) and its future
fails with AppTimeout naming the app and the label (see compat.run_limited).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from parsl.executors import HighThroughputExecutor
from parsl.executors.base import ParslExecutor

from pwrun.parslcfg import compat


class TimesOut(ParslExecutor):
    """Mix in before a Parsl executor: its tasks are limited to `task_timeout` seconds (None:
    no limit), or to their app's `walltime`."""

    task_timeout: float | None = None

    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], *args: Any,
        **kwargs: Any,
    ) -> Future[Any]:  # fmt: skip
        seconds = kwargs.get("walltime") or self.task_timeout
        if seconds:
            func = compat.time_limited(func, float(seconds), self.label)
        return super().submit(func, resource_specification, *args, **kwargs)  # type: ignore[safe-super]


class LocalExecutor(TimesOut, HighThroughputExecutor):  # type: ignore[misc]
    """An HTEX whose workers run on this machine, its tasks' timeouts enforced."""
