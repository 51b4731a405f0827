"""Checkpointing at task exit: 2,000 no-op tasks of a `cache=True` app on pwrun's embedded
local site, with pwrun's checkpointing (BasicMemoizer, checkpoint_mode="task_exit") against the
same memoizer without checkpoints, measured in the same run, rounds alternating.

Target: checkpointing costs at most 10 % (ratio <= 1.10). No root needed.
Usage: python bench/checkpoint.py [--repeat N] [--tasks N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import parsl
from parsl import python_app
from parsl.dataflow.memoization import BasicMemoizer

from pwrun.parslcfg import local_config

TARGET = 1.10


@python_app(cache=True)
def noop(i: int, token: str) -> None:
    return None


def measure(directory: Path, tasks: int, checkpoint: bool) -> float:
    """Seconds for `tasks` no-op tasks on a fresh DataFlowKernel (after 100 to warm it up)."""
    config = local_config(directory / uuid.uuid4().hex)
    if not checkpoint:
        config.memoizer = BasicMemoizer(checkpoint_mode=None)
    token = uuid.uuid4().hex  # every task new: none is served from a memo
    with parsl.load(config):
        for future in [noop(-i, token) for i in range(1, 101)]:
            future.result()
        start = time.perf_counter()
        for future in [noop(i, token) for i in range(tasks)]:
            future.result()
        elapsed = time.perf_counter() - start
    written = list((directory).glob("*/runinfo/*/checkpoint/tasks.pkl"))
    if checkpoint and not written:
        raise SystemExit("no checkpoint was written")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=2000)
    options = parser.parse_args()
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="pwrun-bench-") as tmp:
        for round_ in range(options.repeat):
            for checkpoint in (round_ % 2 == 0, round_ % 2 == 1):
                times[checkpoint].append(measure(Path(tmp), options.tasks, checkpoint))
                print(f"round {round_ + 1} {'checkpoint' if checkpoint else 'none':>10}: "
                      f"{times[checkpoint][-1]:.2f} s", flush=True)  # fmt: skip
    with_, without = statistics.median(times[True]), statistics.median(times[False])
    ratio = with_ / without
    print(f"{options.tasks} no-op tasks, median of {options.repeat}: checkpoint at task exit "
          f"{with_:.2f} s ({options.tasks / with_:.0f} tasks/s), none {without:.2f} s "
          f"({options.tasks / without:.0f} tasks/s)")  # fmt: skip
    print(f"ratio {ratio:.3f} (target <= {TARGET}): {'ok' if ratio <= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
