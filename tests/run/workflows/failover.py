"""N tasks on label `map`, each sleeping SECONDS and returning its square and its host; prints
each result as it comes (`done K on HOST`), then the sum. A task that fails ends the workflow
with its error on one line (exit 1). Arguments: N SECONDS."""

import sys
from concurrent.futures import as_completed

from parsl import python_app


@python_app(executors=["map"])
def work(x: int, seconds: float) -> tuple[int, str]:
    import socket
    import time

    time.sleep(seconds)
    return x * x, socket.gethostname()


n, seconds = int(sys.argv[1]), float(sys.argv[2])
total = 0
for k, future in enumerate(as_completed([work(i, seconds) for i in range(n)]), start=1):
    try:
        square, host = future.result()
    except Exception as exc:
        print(f"failed: {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)
    total += square
    print(f"done {k} on {host}", flush=True)
print(f"sum {total}")
