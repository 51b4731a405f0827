"""Map on one site's `compute` partition, a step on another site's `gpu` partition, reduce here.

Run it with: pwrun run examples/multisite.py -e examples/multisite.executors.yml -i INVENTORY
"""

import parsl
from parsl import python_app

import pwrun


@python_app(executors=["map"])
def square(x: int) -> tuple[int, str]:
    import os
    import socket

    return x * x, f"{socket.gethostname()}/{os.environ.get('SLURM_JOB_PARTITION')}"


@python_app(executors=["gpu"])
def total(*results: tuple[int, str]) -> tuple[int, str]:
    import os
    import socket

    where = f"{socket.gethostname()}/{os.environ.get('SLURM_JOB_PARTITION')}"
    return sum(r[0] for r in results), where


if __name__ == "__main__":
    parsl.load(pwrun.config())
    squares = [square(i) for i in range(8)]
    value, where = total(*squares).result()
    for future in squares:
        print("map ran on", future.result()[1])
    print("sum of squares", value, "computed on", where)
