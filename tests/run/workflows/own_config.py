"""A plain Parsl workflow with its own Config, written for one machine: it never imports pwrun.

    python own_config.py load|with|twice MARKERS LABEL...

Its Config has one HTEX per LABEL (local providers) and retries=2. A task on the first label
fails on its first try (a marker file under MARKERS, on the worker, tells its retry); one task
runs on each label. It loads its Config with `parsl.load(config)` (and cleans up), or
`with parsl.load(config):`, once or twice.
"""

import os
import sys

import parsl
from parsl import python_app
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider


def flaky(marker: str) -> str:
    import os
    import socket

    marker = os.path.expanduser(marker)
    if not os.path.exists(marker):
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        open(marker, "w").close()
        raise RuntimeError("the first try fails on purpose")
    os.remove(marker)
    return socket.gethostname()


def hostname() -> str:
    import socket

    return socket.gethostname()


def config(labels: list[str]) -> Config:
    executors = [
        HighThroughputExecutor(label=label, max_workers_per_node=1, provider=LocalProvider())
        for label in labels
    ]
    return Config(executors=executors, retries=2)


def run(markers: str, labels: list[str]) -> None:
    retried = python_app(flaky, executors=labels[:1])(f"{markers}/flaky-{os.getpid()}")
    ran = {label: python_app(hostname, executors=[label])() for label in labels}
    print("retried task ran on", retried.result())
    for label, future in ran.items():
        print(label, "ran on", future.result())


if __name__ == "__main__":
    form, markers, *labels = sys.argv[1:]
    if form == "load":
        parsl.load(config(labels))
        run(markers, labels)
        parsl.dfk().cleanup()
    for _ in range({"with": 1, "twice": 2}.get(form, 0)):
        with parsl.load(config(labels)):
            run(markers, labels)
