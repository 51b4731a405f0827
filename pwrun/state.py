"""Where pwrun keeps its runs, and the configuration of the run in progress."""

from __future__ import annotations

import os
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


def activate(config: Config | None) -> None:
    """Record the configuration `pwrun run` loaded, for `pwrun.config()`."""
    global _active
    _active = config


def active() -> Config | None:
    return _active
