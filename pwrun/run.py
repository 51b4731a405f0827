"""`pwrun run`: load the run's Parsl configuration, run the user's workflow, clean up."""

from __future__ import annotations

import contextlib
import runpy
import sys
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import parsl
from parsl.config import Config

from pwrun import state
from pwrun.parslcfg import local_config


def new_run_dir() -> Path:
    """A fresh directory that keeps everything one run produces."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    run_dir = state.runs_dir() / stamp
    run_dir.mkdir(parents=True, mode=0o700)
    return run_dir


@contextlib.contextmanager
def loaded(config: Config) -> Iterator[None]:
    """Load `config` for the workflow; a workflow's own `parsl.load(pwrun.config())` is a no-op."""
    dfk = parsl.load(config)
    original_load = parsl.load

    def load_once(given: Config | None = None) -> parsl.DataFlowKernel:
        if given is None or given is config:
            return dfk
        return original_load(given)

    state.activate(config)
    parsl.load = load_once
    try:
        yield
    finally:
        parsl.load = original_load
        state.activate(None)
        dfk.cleanup()
        parsl.clear()


def run_script(path: Path, args: list[str]) -> int:
    """Run a Python script as `__main__` and return what its exit status would be."""
    saved_argv, sys.argv = sys.argv, [str(path), *args]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except Exception:  # the workflow's own failure: show its traceback, it is the user's code
        traceback.print_exc()
        return 1
    finally:
        sys.argv = saved_argv
    return 0


def run_workflow(workflow: Path, args: list[str]) -> int:
    """Run `workflow` on the embedded local site and return its exit code."""
    run_dir = new_run_dir()
    with loaded(local_config(run_dir)):
        return run_script(workflow, args)
