"""A workflow on the local site that waits long after its first result: to be interrupted."""

import parsl
from parsl import python_app

import pwrun


@python_app
def nap(seconds: float) -> int:
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


if __name__ == "__main__":
    parsl.load(pwrun.config())
    print("first result from", nap(0).result(), flush=True)
    futures = [nap(600) for _ in range(2)]
    print("waiting", flush=True)
    print([f.result() for f in futures])
