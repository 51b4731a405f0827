"""Tasks that end every way a report counts, under a Config with retries=1.

    python tally.py MARKERS EXIT_CODE [SECONDS [LABEL]]

20 `double` tasks succeed; one `flaky` task fails its first try (a marker file under MARKERS
tells its retry; MARKERS is made where the task runs) and succeeds; two `broken` tasks fail both
tries (one message holds a terminal escape, which XML cannot). It waits SECONDS, then exits
with EXIT_CODE. Its Config has one executor, LABEL (default: local).
"""

import os
import sys
import time

import parsl
from parsl import python_app
from parsl.config import Config
from parsl.executors import HighThroughputExecutor


@python_app
def double(x: int) -> int:
    return 2 * x


@python_app
def flaky(marker: str) -> str:
    import os

    if not os.path.exists(marker):
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        open(marker, "w").close()
        raise RuntimeError("the first try fails on purpose")
    return "retried"


@python_app
def broken(i: int) -> None:
    raise ValueError(f"broken \x1b[31m{i}")


if __name__ == "__main__":
    markers, code = sys.argv[1], int(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 0
    label = sys.argv[4] if len(sys.argv) > 4 else "local"
    with parsl.load(Config(executors=[HighThroughputExecutor(label=label)], retries=1)):
        print(sum(f.result() for f in [double(i) for i in range(20)]))
        print(flaky(os.path.join(markers, "flaky")).result())
        for future in [broken(i) for i in range(2)]:
            try:
                future.result()
            except ValueError as exc:
                print("failed as meant:", exc)
        time.sleep(seconds)
    sys.exit(code)
