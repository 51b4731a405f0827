"""Each label reports its env: sys.prefix, its Parsl, and which probe packages it can import."""

import json

import parsl
from parsl import python_app

import pwrun


def report() -> dict:
    import contextlib
    import importlib
    import sys

    import parsl

    found = {}
    for name in ("pwrun_probe_a", "pwrun_probe_b"):
        with contextlib.suppress(ImportError):
            found[name] = importlib.import_module(name).VALUE
    return {"prefix": sys.prefix, "parsl": parsl.__version__, "found": found}


on_one = python_app(report, executors=["one"])
on_two = python_app(report, executors=["two"])

if __name__ == "__main__":
    with parsl.load(pwrun.config()):
        print(json.dumps({"one": on_one().result(), "two": on_two().result()}))
