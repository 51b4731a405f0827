"""Prints an environment variable as a label's worker sees it: `env_var.py LABEL NAME`."""

import sys

from parsl import python_app


def variable(name: str) -> str:
    import os

    return os.environ[name]


if __name__ == "__main__":
    label, name = sys.argv[1:]
    print(python_app(variable, executors=[label])(name).result())
