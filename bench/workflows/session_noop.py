"""noop.py's first results through pwrun.session() instead of `pwrun run`.

Usage: python session_noop.py EXECUTORS INVENTORY
"""

import sys

from noop import first_results

import pwrun


def nothing() -> None:
    return None


if __name__ == "__main__":
    with pwrun.session(sys.argv[1], sys.argv[2]) as dfk:
        first_results(dfk, nothing)  # defined here: workers cannot import noop
