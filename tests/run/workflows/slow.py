"""A workflow that gets its workers going, then waits long: to be interrupted or killed."""

import parsl
from parsl import python_app

import pwrun


@python_app(executors=["map"])
def nap(seconds: float) -> str:
    import socket
    import time

    time.sleep(seconds)
    return socket.gethostname()


if __name__ == "__main__":
    parsl.load(pwrun.config())
    print("first result from", nap(0).result(), flush=True)
    futures = [nap(600) for _ in range(2)]
    print("waiting", flush=True)
    print([f.result() for f in futures])
