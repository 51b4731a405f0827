"""Parsl configuration rendering: one HighThroughputExecutor per site."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from parsl.config import Config
from parsl.dataflow.memoization import BasicMemoizer
from parsl.executors import HighThroughputExecutor
from parsl.executors.base import ParslExecutor
from parsl.providers import LocalProvider

from pwrun import state
from pwrun.parslcfg.compat import INTERCHANGE_LAUNCH_CMD
from pwrun.parslcfg.executors import LOCAL_SITE, LocalSpec
from pwrun.parslcfg.failover import Routing
from pwrun.parslcfg.timeouts import LocalExecutor

LOCAL_LABEL = "local"
# Parsl submits a new executor's init_blocks at its strategy's next tick: a short period gets
# the first workers going sooner. A tick is local work (Slurm is asked at most once per the
# provider's status_polling_interval), so it stays cheap.
STRATEGY_PERIOD = 0.2


def local_executor(
    label: str = LOCAL_LABEL, spec: LocalSpec | None = None
) -> HighThroughputExecutor:
    """An encrypted HTEX whose workers run on this machine (the embedded local site), as `spec`
    says (its defaults without one)."""
    spec = spec or LocalSpec.model_validate({"site": LOCAL_SITE})
    executor = LocalExecutor(
        label=label,
        address="127.0.0.1",
        max_workers_per_node=spec.max_workers_per_node or os.cpu_count() or 1,
        cores_per_worker=spec.cores_per_worker,
        provider=LocalProvider(
            init_blocks=spec.init_blocks,
            min_blocks=spec.min_blocks,
            max_blocks=spec.max_blocks,
            parallelism=spec.parallelism,
            worker_init=spec.shell_init(),
        ),
        encrypted=True,
        interchange_launch_cmd=list(INTERCHANGE_LAUNCH_CMD),
        heartbeat_period=spec.heartbeat_period,
        heartbeat_threshold=spec.heartbeat_threshold,
    )
    executor.task_timeout = spec.task_timeout
    return executor


def run_config(
    executors: list[ParslExecutor],
    run_dir: Path,
    routing: Routing | None = None,
    resume: Sequence[str] = (),
) -> Config:
    """A run's Config: these executors, Parsl writing under the run's directory, failed tries
    routed by `routing`, finished tasks checkpointed as they end (in `runinfo/NNN/checkpoint`)
    and those of the checkpoint directories `resume` not run again (none given: those of the
    run's earlier DataFlowKernels, as in Parsl)."""
    routing = routing or Routing()
    routing.use(executors)
    return Config(
        executors=executors,
        run_dir=str(run_dir / state.PARSL_DIR),
        strategy_period=STRATEGY_PERIOD,
        retries=routing.retries or 0,
        retry_handler=routing,
        memoizer=BasicMemoizer(checkpoint_mode="task_exit", checkpoint_files=list(resume) or None),
    )


def local_config(
    run_dir: Path, routing: Routing | None = None, resume: Sequence[str] = ()
) -> Config:
    """The embedded default: one local executor, labelled 'local'."""
    return run_config([local_executor()], run_dir, routing, resume)
