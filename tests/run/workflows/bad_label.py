"""An app asks for an executor label the run does not have."""

import parsl
from parsl import python_app

import pwrun


@python_app(executors=["nope"])
def answer() -> int:
    return 42


if __name__ == "__main__":
    parsl.load(pwrun.config())
    print(answer().result())
