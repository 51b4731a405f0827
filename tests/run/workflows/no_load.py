"""A Parsl script that never calls parsl.load: `pwrun run` loads the run's config for it."""

from parsl import python_app


@python_app
def double(x: int) -> int:
    return 2 * x


if __name__ == "__main__":
    print(sum(f.result() for f in [double(i) for i in range(5)]))
