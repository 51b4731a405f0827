"""Where pwrun keeps its runs, and the configuration of the run in progress."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # parsl is slow to import; modules run by Ansible import this one
    from parsl.config import Config

_active: Config | None = None


def home() -> Path:
    """pwrun's state directory: $PWRUN_HOME, else ~/.local/state/pwrun."""
    default = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "pwrun"
    return Path(os.environ.get("PWRUN_HOME", default))


def runs_dir() -> Path:
    return home() / "runs"


def new_run_dir() -> Path:
    """A fresh directory that keeps everything one run produces."""
    run_dir = runs_dir() / datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    run_dir.mkdir(parents=True, mode=0o700)
    return run_dir


def activate(config: Config | None) -> None:
    """Record the configuration `pwrun run` loaded, for `pwrun.config()`."""
    global _active
    _active = config


def active() -> Config | None:
    return _active
