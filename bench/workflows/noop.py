"""Time to a first result from every executor, then N no-op tasks on the first one."""

import sys
import time

import parsl
from parsl import python_app

import pwrun


def nothing() -> None:
    return None


def first_results(dfk: parsl.DataFlowKernel, function=nothing) -> dict:
    """One task of `function` (a no-op of the script run as __main__, which Parsl sends by
    value) per executor, waited for; the apps by label. Prints the wall-clock time
    (bench/session.py compares it across processes)."""
    labels = [label for label in dfk.executors if not label.startswith("_parsl")]
    apps = {label: python_app(function, executors=[label]) for label in labels}
    for future in [app() for app in apps.values()]:
        future.result()
    print(f"first result at {time.time():.3f}", flush=True)
    return apps


if __name__ == "__main__":
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    start = time.perf_counter()
    dfk = parsl.load(pwrun.config())
    print(f"loaded {time.perf_counter() - start:.2f} s")  # the DFK: interchanges, first blocks
    apps = first_results(dfk)
    labels = list(apps)
    print(f"first result {time.perf_counter() - start:.2f} s")
    if tasks:
        start = time.perf_counter()
        for future in [apps[labels[0]]() for _ in range(tasks)]:
            future.result()
        elapsed = time.perf_counter() - start
        print(f"throughput {tasks / elapsed:.1f} tasks/s ({tasks} tasks in {elapsed:.2f} s)")
