"""Apps that outlive their time: a bash_app whose shell starts children (one ignores
SIGTERM), a python_app that starts a child and sleeps. MARK names their processes. Prints
each outcome; also two 1.5 s tasks queued behind each other under a 2 s limit, which succeed
because a timeout counts from the start of execution. Arguments: MARK LABEL."""

import sys

from parsl import bash_app, python_app

mark, label = sys.argv[1], sys.argv[2]


@bash_app(executors=[label])
def stubborn(mark: str) -> str:
    return f"sleep 3000{mark} & (trap '' TERM; exec sleep 3001{mark}) & sleep 3002{mark}; wait"


@bash_app(executors=[label])
def quick_enough(walltime: float = 30) -> str:
    return "sleep 1.5"


@python_app(executors=[label])
def sleepy(mark: str, walltime: float = 1) -> None:
    import subprocess
    import time

    subprocess.Popen(["sleep", f"3003{mark}"])
    time.sleep(3000)


for future in [stubborn(mark), sleepy(mark)]:
    try:
        future.result()
        print("finished")
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}")
queued = [quick_enough(walltime=2) for _ in range(2)]
print("queued tasks:", [f.result() for f in queued])
