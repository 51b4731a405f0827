"""A steady stream of short tasks on one label: each appends its index to a file in the site
user's home (shared by the site's nodes), so a test can count executions; prints each result
as it arrives, with the time, and "running" after the first.

Arguments: TASKS SECONDS (each task's duration) [LOG] (default ~/pwrun-executions).
"""

import sys
import time
from concurrent.futures import as_completed

import parsl
from parsl import python_app

import pwrun


@python_app(executors=["map"])
def square(i: int, seconds: float, log: str) -> int:
    import os
    import time

    time.sleep(seconds)
    with open(os.path.expanduser(log), "a") as out:
        out.write(f"{i}\n")
    return i * i


if __name__ == "__main__":
    tasks, seconds = int(sys.argv[1]), float(sys.argv[2])
    log = sys.argv[3] if len(sys.argv) > 3 else "~/pwrun-executions"
    parsl.load(pwrun.config())
    print("first", square(-1, 0, log).result(), time.time(), flush=True)
    print("running", flush=True)
    futures = {square(i, seconds, log): i for i in range(tasks)}
    for future in as_completed(futures):  # as they arrive
        print("result", futures[future], future.result(), time.time(), flush=True)
