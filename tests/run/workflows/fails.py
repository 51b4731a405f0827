"""A workflow whose app raises: pwrun's exit code is the workflow's, and teardown still runs."""

import parsl
from parsl import python_app

import pwrun


@python_app(executors=["map"])
def broken() -> None:
    raise RuntimeError("the app failed on purpose")


if __name__ == "__main__":
    parsl.load(pwrun.config())
    broken().result()
