"""What a run made, recorded as it is made, so that any process can tear it down.

Each run keeps ``run.json`` in its run directory: the executors, their sites, ssh targets,
remote directories and tunnels. `pwrun run` tears down from it when the workflow ends (also on
failure or Ctrl-C); `pwrun down` does the same for a run that was killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pwrun import state
from pwrun.errors import InfrastructureError
from pwrun.transport import tunnel
from pwrun.transport.ssh import SSHTarget

RECORD = "run.json"


@dataclass
class ExecutorRecord:
    """One executor's footprint on its site."""

    label: str
    site: str
    ssh: SSHTarget
    remote_dir: str
    tunnel: str

    def blocks_command(self, action: str) -> str:
        """A shell command listing (or cancelling) this executor's Slurm jobs on the site."""
        ids = (
            "squeue -h -u \"$(id -un)\" -o '%i %o' | "
            f"awk -v d={shlex.quote(self.remote_dir + '/')} 'index($2, d) == 1 {{print $1}}'"
        )
        if action == "list":
            return ids
        return f'ids=$({ids}); [ -z "$ids" ] || scancel $ids'

    def teardown(self) -> None:
        """Close the tunnel, cancel leftover blocks, remove remote temporaries, end the ssh."""
        opened = tunnel.load(self.tunnel)
        if opened:
            opened.close()
        remote_dir = shlex.quote(self.remote_dir)
        try:  # the run's directory goes with its last executor's
            self.ssh.run(
                f"{self.blocks_command('cancel')}; rm -rf {remote_dir};"
                f" rmdir $(dirname {remote_dir}) 2>/dev/null; true"
            )
        finally:
            self.ssh.close()


@dataclass
class RunRecord:
    """A run's identity, state and footprint, saved to its directory after every change."""

    directory: Path
    workflow: str
    pid: int = field(default_factory=os.getpid)
    status: str = "starting"
    executors: list[ExecutorRecord] = field(default_factory=list)
    interchanges: list[int] = field(default_factory=list)  # PIDs of Parsl's local interchanges
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    teardown_started: float | None = field(default=None, repr=False)  # perf_counter, not saved

    @property
    def id(self) -> str:
        return self.directory.name

    def save(self) -> None:
        data = asdict(self)
        data["directory"] = str(self.directory)
        del data["teardown_started"]
        (self.directory / RECORD).write_text(json.dumps(data, indent=1))

    def add(self, executor: ExecutorRecord) -> None:
        """Record an executor before its tunnel or remote files exist."""
        self.executors.append(executor)
        self.save()

    def set_status(self, status: str) -> None:
        self.status = status
        self.save()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Mark the run as being in stage `name` and record how long the stage took."""
        self.set_status(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
            self.save()

    @classmethod
    def load(cls, directory: Path) -> RunRecord:
        data = json.loads((directory / RECORD).read_text())
        executors = []
        for executor in data.pop("executors"):
            ssh = executor.pop("ssh")
            ssh["options"] = tuple(ssh["options"])  # JSON has lists; SSHTarget is hashable
            executors.append(ExecutorRecord(**executor, ssh=SSHTarget(**ssh)))
        return cls(**{**data, "directory": Path(data["directory"]), "executors": executors})

    def process_alive(self) -> bool:
        """True while the pwrun process that made this run is still running it."""
        return b"pwrun" in _cmdline(self.pid)

    def teardown(self) -> list[str]:
        """Undo everything recorded; return one message per site that could not be cleaned."""
        start = self.teardown_started or time.perf_counter()
        problems = []
        for pid in self.interchanges:  # normally gone with the DFK; left when pwrun was killed
            if b"interchange" in _cmdline(pid):
                os.kill(pid, signal.SIGKILL)
        for executor in self.executors:
            try:
                executor.teardown()
            except InfrastructureError as exc:
                problems.append(f"{executor.label}: {exc}")
        self.timings["teardown"] = round(time.perf_counter() - start, 3)
        self.set_status("down" if not problems else "teardown-failed")
        return problems


def _cmdline(pid: int) -> bytes:
    """A process's command line, empty when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def all_runs() -> list[RunRecord]:
    """Every recorded run, oldest first."""
    runs = []
    for directory in sorted(state.runs_dir().glob("*")):
        if (directory / RECORD).is_file():
            runs.append(RunRecord.load(directory))
    return runs
