"""Parsl configuration rendering: one HighThroughputExecutor per site."""

from __future__ import annotations

import atexit
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import parsl
from parsl.config import Config
from parsl.dataflow.memoization import BasicMemoizer
from parsl.errors import NoDataFlowKernelError
from parsl.executors import HighThroughputExecutor
from parsl.executors.base import ParslExecutor
from parsl.monitoring import MonitoringHub
from parsl.providers import LocalProvider

from pwrun import state
from pwrun.errors import PwrunError
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
    monitoring: MonitoringHub | None = None,
) -> Config:
    """A run's Config: these executors, Parsl writing under the run's directory (monitoring's
    database too: `<run_dir>/runinfo/monitoring.db`), failed tries
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
        monitoring=monitoring,
    )


def local_config(
    run_dir: Path,
    routing: Routing | None = None,
    resume: Sequence[str] = (),
    monitoring: MonitoringHub | None = None,
) -> Config:
    """The embedded default: one local executor, labelled 'local'."""
    return run_config([local_executor()], run_dir, routing, resume, monitoring)


def standalone_config() -> Config:
    """The embedded local site for a script run without pwrun (`python flow.py`), in a run
    directory of its own. A DFK still loaded at interpreter exit is cleaned up then (Parsl
    itself only warns), so no interchange or worker pool outlives the script."""
    atexit.unregister(_clean_up_loaded)  # once, however often the script asks
    atexit.register(_clean_up_loaded)
    return local_config(state.new_run_dir())


def _clean_up_loaded() -> None:
    try:
        dfk = parsl.dfk()
    except NoDataFlowKernelError:
        return  # cleaned up by the script (or never loaded)
    dfk.cleanup()


def check_monitoring() -> None:
    """Refuse `--monitor` without Parsl's monitoring and visualization extras."""
    missing = [name for name in ("sqlalchemy", "flask_sqlalchemy", "pandas", "plotly")
               if importlib.util.find_spec(name) is None]  # fmt: skip
    if missing:
        raise PwrunError(
            f"--monitor needs Parsl's monitoring extras ({', '.join(missing)} missing): "
            "pip install 'pwrun[monitor]'"
        )


def monitoring_hub(workflow_name: str) -> MonitoringHub:
    """Parsl's monitoring for a run, named after its workflow. Workers send their messages
    through HTEX's own channel to the interchange (HTEXRadio, Parsl's default): on a cluster,
    the run's encrypted connection through its tunnel."""
    return MonitoringHub(workflow_name=workflow_name, resource_monitoring_interval=10)
