"""Parsl configuration rendering: one HighThroughputExecutor per site."""

from __future__ import annotations

import os
from pathlib import Path

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

LOCAL_LABEL = "local"


def local_config(run_dir: Path, workers: int | None = None) -> Config:
    """The embedded default: one encrypted HTEX whose workers run on this machine."""
    return Config(
        executors=[
            HighThroughputExecutor(
                label=LOCAL_LABEL,
                address="127.0.0.1",
                max_workers_per_node=workers or os.cpu_count() or 1,
                provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
                encrypted=True,
            )
        ],
        run_dir=str(run_dir / "runinfo"),
        strategy_period=1,
    )
