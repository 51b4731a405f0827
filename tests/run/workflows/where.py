"""`where.py LABEL NODES TASKS`: once LABEL's block has a worker pool on each of its NODES
nodes, runs TASKS tasks there and prints, per task, its host, Slurm job and visible GPU."""

import sys
import time

import parsl
from parsl import python_app

import pwrun


def where() -> str:
    import os
    import socket
    import time

    time.sleep(0.5)  # long enough that no one pool takes every task
    job, gpu = os.environ.get("SLURM_JOB_ID"), os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"{socket.gethostname()} job={job} gpu={gpu}"


if __name__ == "__main__":
    label, nodes, tasks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    dfk = parsl.load(pwrun.config())
    executor = dfk.executors[label]
    deadline = time.monotonic() + 120
    while len(executor.connected_managers()) < nodes:  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            sys.exit(f"only {len(executor.connected_managers())} of {nodes} pools")  # type: ignore[attr-defined]
        time.sleep(0.2)
    app = python_app(where, executors=[label])
    for line in sorted(f.result() for f in [app() for _ in range(tasks)]):
        print(line)
