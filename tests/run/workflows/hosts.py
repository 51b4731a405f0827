"""Twenty tasks on one label (the first argument); prints [hostname, batch job id] per task as
JSON: Slurm's job id, which Slurm's Torque wrappers and Slurm itself both set."""

import json
import sys

import parsl
from parsl import python_app


def where() -> tuple[str, str | None]:
    import os
    import socket
    import time

    time.sleep(0.2)
    return socket.gethostname(), os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")


if __name__ == "__main__":
    label = sys.argv[1]
    parsl.load()
    app = python_app(where, executors=[label])
    print(json.dumps([f.result() for f in [app() for _ in range(20)]]))
