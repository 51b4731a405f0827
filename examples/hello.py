"""Hello from every worker: the smallest Parsl workflow, run with `pwrun run examples/hello.py`."""

import socket

import parsl
from parsl import python_app

import pwrun


@python_app
def hello(i: int) -> str:
    import os
    import socket

    return f"task {i}: hello from {socket.gethostname()} (pid {os.getpid()})"


if __name__ == "__main__":
    parsl.load(pwrun.config())
    for line in sorted(f.result() for f in [hello(i) for i in range(4)]):
        print(line)
    print(f"workflow ran from {socket.gethostname()}")
