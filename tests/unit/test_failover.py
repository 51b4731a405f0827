"""Ranked failover through a real DataFlowKernel: infrastructure failures move a task down its
first label's fallbacks, the app's own failures are retried where they ran, lost sites stop
taking tasks. The ssh seam (the site probe) is a stand-in; executors are Parsl's own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import parsl
import pytest
from parsl import python_app
from parsl.config import Config
from parsl.executors import HighThroughputExecutor, ThreadPoolExecutor
from parsl.executors.high_throughput.errors import ManagerLost
from parsl.providers import LocalProvider

from pwrun.errors import InfrastructureError
from pwrun.parslcfg import compat
from pwrun.parslcfg.failover import NoFallbackLeft, Routing, SiteLost, Unreachable


class Probe:
    """The ssh seam of a site: `reachable` decides what its probe answers."""

    def __init__(self, reachable: bool) -> None:
        self.reachable = reachable
        self.calls = 0

    def run(self, command: str, timeout: float) -> None:
        self.calls += 1
        if not self.reachable:
            raise InfrastructureError(f"site-a: command timed out after {timeout:g}s")


def ran_on(thread_name: str, label: str) -> bool:
    """Whether a thread is one of the ThreadPoolExecutor labelled `label`."""
    return thread_name.startswith(f"ThreadPoolExecutor-{label}_")


def load(tmp_path: Path, routing: Routing, *executors: Any, retries: int = 0) -> Config:
    config = Config(
        executors=list(executors), run_dir=str(tmp_path), retries=retries, retry_handler=routing
    )
    routing.use(config.executors)
    return config


@pytest.fixture
def dfk_cleanup() -> Iterator[None]:
    """No DataFlowKernel outlives its test, even a failed one."""
    yield
    parsl.clear()


def test_tasks_of_a_site_unreachable_at_start_run_on_the_fallback(
    tmp_path: Path, dfk_cleanup: None
) -> None:
    routing = Routing({"a": ["b"]}, {"a": ("site-a", None), "b": ("local", None)})
    routing.site_lost("site-a", "unreachable at start")
    lost = routing.lost["site-a"]
    with parsl.load(load(tmp_path, routing, Unreachable("a", lost), ThreadPoolExecutor(label="b"))):
        futures = [where_on("a") for _ in range(5)]
        names = [f.result(timeout=30) for f in futures]
    assert all(ran_on(name, "b") for name in names), names
    assert all(f.task_record["executor"] == "b" for f in futures)
    assert all(f.task_record["fail_cost"] == 0 for f in futures)  # a move costs no retry


def where_on(label: str) -> Any:
    @python_app(executors=[label])
    def thread_name() -> str:
        import threading

        return threading.current_thread().name

    return thread_name()


def test_an_apps_own_exception_is_retried_on_its_label_never_moved(
    tmp_path: Path, dfk_cleanup: None
) -> None:
    routing = Routing({"a": ["b"]}, {"a": ("site-a", None), "b": ("local", None)}, retries=2)
    tries: list[str] = []

    @python_app(executors=["a"])
    def fails_twice() -> int:
        import threading

        tries.append(threading.current_thread().name)
        if len(tries) < 3:
            raise ValueError(f"try {len(tries)} failed")
        return len(tries)

    a, b = ThreadPoolExecutor(label="a"), ThreadPoolExecutor(label="b")
    with parsl.load(load(tmp_path, routing, a, b, retries=2)):
        assert fails_twice().result(timeout=30) == 3
    assert len(tries) == 3 and all(ran_on(name, "a") for name in tries), tries


def test_an_apps_exception_past_its_retries_fails_on_its_label(
    tmp_path: Path, dfk_cleanup: None
) -> None:
    routing = Routing({"a": ["b"]}, {"a": ("site-a", None), "b": ("local", None)})

    @python_app(executors=["a"])
    def fails() -> None:
        raise ValueError("the app's own")

    a, b = ThreadPoolExecutor(label="a"), ThreadPoolExecutor(label="b")
    with parsl.load(load(tmp_path, routing, a, b, retries=1)):
        future = fails()
        with pytest.raises(ValueError, match="the app's own"):
            future.result(timeout=30)
    assert future.task_record["executor"] == "a"
    assert future.task_record["try_id"] == 1  # retried once, where it ran


def test_the_workflows_retry_handler_prices_the_apps_failures(
    tmp_path: Path, dfk_cleanup: None
) -> None:
    asked: list[str] = []

    def handler(exc: Exception, task: Any) -> float:
        asked.append(type(exc).__name__)
        return 10  # more than the retries: no retry

    routing = Routing({}, {"a": ("local", None)})
    routing.handler = handler

    @python_app(executors=["a"])
    def fails() -> None:
        raise KeyError("x")

    config = load(tmp_path, routing, ThreadPoolExecutor(label="a"), retries=3)
    with parsl.load(config), pytest.raises(KeyError):
        fails().result(timeout=30)
    assert asked == ["KeyError"]


def task(label: str, task_id: int = 1) -> dict[str, Any]:
    return {"id": task_id, "executor": label, "func_name": "simulate"}


def test_infrastructure_failures_walk_the_first_labels_chain_in_order() -> None:
    routing = Routing(
        {"a": ["b", "c"], "b": ["a"]},
        {label: (f"site-{label}", None) for label in "abc"},
    )
    routing.use([ThreadPoolExecutor(label=label) for label in "abc"])
    record = task("a")
    lost = ManagerLost(b"m1", "node1")
    assert routing(lost, record) == 0 and record["executor"] == "b"
    # b's own fallback (a) is not consulted: the chain is the first label's
    assert routing(lost, record) == 0 and record["executor"] == "c"
    assert routing(lost, record) == 1 and record["executor"] == "c"  # no move left: a retry


def test_a_lost_site_is_skipped_in_the_chain() -> None:
    routing = Routing({"a": ["b", "c"]}, {label: (f"site-{label}", None) for label in "abc"})
    routing.use([ThreadPoolExecutor(label=label) for label in "abc"])
    routing.site_lost("site-b", "cut")
    record = task("a")
    assert routing(ManagerLost(b"m", "n"), record) == 0
    assert record["executor"] == "c"


def test_no_fallback_and_an_unreachable_site_fails_naming_app_label_and_site() -> None:
    probe = Probe(reachable=False)
    routing = Routing({}, {"a": ("site-a", probe)})  # type: ignore[dict-item]
    routing.use([ThreadPoolExecutor(label="a")])
    with pytest.raises(NoFallbackLeft) as failed:
        routing(ManagerLost(b"m", "n"), task("a"))
    message = str(failed.value)
    assert "app simulate on label a" in message and "site site-a lost" in message
    assert "no fallback" in message and probe.calls == 1


def test_a_reachable_site_after_a_lost_manager_is_a_retry_in_place() -> None:
    probe = Probe(reachable=True)
    routing = Routing({}, {"a": ("site-a", probe)})  # type: ignore[dict-item]
    routing.use([ThreadPoolExecutor(label="a")])
    record = task("a")
    assert routing(ManagerLost(b"m", "n"), record) == 1
    assert record["executor"] == "a" and not routing.lost and probe.calls == 1


def test_a_lost_manager_with_a_fallback_probes_in_the_background() -> None:
    probe = Probe(reachable=False)
    routing = Routing({"a": ["b"]}, {"a": ("site-a", probe), "b": ("local", None)})  # type: ignore[dict-item]
    routing.use([ThreadPoolExecutor(label="a"), ThreadPoolExecutor(label="b")])
    record = task("a")
    assert routing(ManagerLost(b"m", "n"), record) == 0 and record["executor"] == "b"
    for thread in threading.enumerate():
        if thread.name == "pwrun-probe-site-a":
            thread.join(10)
    assert "site-a" in routing.lost


def test_a_site_declared_lost_mid_run_moves_its_queued_tasks(
    tmp_path: Path, dfk_cleanup: None
) -> None:
    """The seam the tunnel supervisor calls: `site_lost` fails the executor's outstanding tasks
    (here: queued on an HTEX whose block never starts) and they finish on the fallback."""
    idle = HighThroughputExecutor(
        label="a", address="127.0.0.1", provider=LocalProvider(init_blocks=0, max_blocks=0),
        encrypted=True,
    )  # fmt: skip
    routing = Routing({"a": ["b"]}, {"a": ("site-a", None), "b": ("local", None)})
    with parsl.load(load(tmp_path, routing, idle, ThreadPoolExecutor(label="b"))):
        futures = [where_on("a") for _ in range(4)]
        for future in futures:
            assert not future.done()
        routing.site_lost("site-a", "declared by the tunnel supervisor")
        names = [f.result(timeout=30) for f in futures]
        later = where_on("a").result(timeout=30)  # new tasks of a go straight on
    assert all(ran_on(name, "b") for name in [*names, later])
    assert idle.bad_state_is_set
    assert isinstance(idle.executor_exception, SiteLost)
    assert compat.infrastructure_failure(idle.executor_exception, idle)
