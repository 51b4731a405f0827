"""Where pwrun keeps its runs, how it writes records there, and the run in progress's config."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pwrun.console import warn

if TYPE_CHECKING:  # parsl is slow to import; modules run by Ansible import this one
    from parsl.config import Config

_active: Config | None = None

# A run directory's layout.
RUN_RECORD = "run.json"  # what the run made (pwrun.runstate)
RENDERED_CONFIG = "config.txt"  # the Parsl Config, as `pwrun config` prints it
PARSL_DIR = "runinfo"  # Parsl's run_dir: logs, submit scripts
ANSIBLE_DIR = "ansible"  # ansible-runner's private data dir, when the run provisioned


def home() -> Path:
    """pwrun's state directory, private to the user (0700): $PWRUN_HOME, else
    $XDG_STATE_HOME/pwrun, else ~/.local/state/pwrun."""
    default = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "pwrun"
    path = Path(os.environ.get("PWRUN_HOME", default)).expanduser()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:  # made by an older pwrun, or by hand: it holds keys
        path.chmod(0o700)
    return path


def private_dir(*parts: str) -> Path:
    """A directory under home() that only the user can enter."""
    path = home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def runs_dir() -> Path:
    return private_dir("runs")


def new_run_dir() -> Path:
    """A fresh directory that keeps everything one run produces."""
    run_dir = runs_dir() / datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    run_dir.mkdir(mode=0o700)
    return run_dir


def temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file in `path`'s directory, named after it: its descriptor and path."""
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")


@contextlib.contextmanager
def replacing(path: Path, mode: int = 0o600, fsync: bool = True) -> Iterator[BinaryIO]:
    """A file to write that replaces `path` in one step when the block ends and is removed when it
    fails: a reader sees the old file or the new, whole; never a partial one. `fsync`: on disk
    before it replaces `path` (records); without, as fast as the page cache (transfers)."""
    fd, partial = temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(partial, mode)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace `path` with `text` (UTF-8) in one step."""
    with replacing(path, mode) as out:
        out.write(bytes(text, "utf-8"))


def read_record(path: Path) -> dict[str, Any] | None:
    """A JSON record written by write_atomic; None, with one warning, when it is unreadable."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warn(f"{path}: unreadable ({exc}); skipped")
        return None
    if not isinstance(data, dict):
        warn(f"{path}: not a record; skipped")
        return None
    return data


def activate(config: Config | None) -> None:
    """Record the configuration `pwrun run` loaded, for `pwrun.config()`."""
    global _active
    _active = config


def active() -> Config | None:
    return _active
