"""A workflow that gets its workers going, then waits long: to be interrupted or killed.

Its one argument is the executor label to run on (default: map).
"""

import sys

import parsl
from parsl import python_app

import pwrun


def nap(seconds: float) -> str:
    import socket
    import time

    time.sleep(seconds)
    return socket.gethostname()


if __name__ == "__main__":
    label = sys.argv[1] if len(sys.argv) > 1 else "map"
    parsl.load(pwrun.config())
    app = python_app(nap, executors=[label])
    print("first result from", app(0).result(), flush=True)
    futures = [app(600) for _ in range(2)]
    print("waiting", flush=True)
    print([f.result() for f in futures])
