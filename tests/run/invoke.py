"""pwrun as tests run it: a subprocess in a home of its own (`home/state` is its PWRUN_HOME),
to completion, or (slow.py) started and left waiting for a test to interrupt or kill."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

WORKFLOWS = Path(__file__).with_name("workflows")


def pwrun_env(home: Path) -> dict[str, str]:
    return {**os.environ, "PWRUN_HOME": str(home / "state")}


def pwrun(*args: str, home: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`pwrun ARGS` in `home`, to its end."""
    return subprocess.run(
        [sys.executable, "-m", "pwrun.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=home, env=pwrun_env(home),
    )  # fmt: skip


def start_run(home: Path, *args: str, until: str | tuple[str, ...]) -> subprocess.Popen:
    """`pwrun run ARGS` in `home`, returned once a line of its stdout starts with `until` (or
    one of them). pwrun leads its process group, as a shell's foreground job does."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pwrun.cli", "run", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=home, env=pwrun_env(home),
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stdout:
        if line.startswith(until):
            return proc
    proc.kill()
    raise AssertionError(f"the run ended early: {proc.stderr.read()[-3000:]}")


def start_slow_run(home: Path, *args: str) -> subprocess.Popen:
    """`pwrun run slow.py ARGS` (a workflow that waits after its first result), once it waits."""
    return start_run(home, str(WORKFLOWS / "slow.py"), *args, until="waiting")


@contextlib.contextmanager
def killed_after(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """The block; then `proc`'s whole group is killed (-9) if it still runs."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
