"""What a run made, recorded as it is made, so that any process can tear it down.

Each run keeps ``run.json`` in its run directory: the executors, their sites, ssh targets,
remote directories and tunnels. `pwrun run` tears down from it when the workflow ends (also on
failure or Ctrl-C); `pwrun down` does the same for a run that was killed.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import shlex
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pwrun import state
from pwrun.console import warn
from pwrun.errors import InfrastructureError
from pwrun.inventory.pw.lifecycle import StartedCluster, stop_all
from pwrun.process import ProcessRef, run_each
from pwrun.transport import tunnel
from pwrun.transport.files import JOBS_FILE, STORE_DIR
from pwrun.transport.ssh import SSHTarget
from pwrun.transport.supervision import TunnelState

RECORD = state.RUN_RECORD
_SAVING = threading.Lock()


class RunStatus(StrEnum):
    """Where a run is; `DOWN` once everything it made is gone."""

    STARTING = "starting"
    CLUSTERS = "clusters"  # starting PW clusters (pwrun run --start)
    PROVISION = "provision"
    TUNNELS = "tunnels"
    WORKFLOW = "workflow"
    DOWN = "down"
    TEARDOWN_FAILED = "teardown-failed"


@dataclass
class ExecutorRecord:
    """One executor's footprint on its site."""

    label: str
    site: str
    ssh: SSHTarget
    remote_dir: str
    tunnel: str
    scheduler: str = "slurm"  # or "pbs": set once the site's facts are known
    tunnel_state: TunnelState = TunnelState.CLOSED
    reconnects: int = 0  # times its tunnel was re-opened during the run
    down: bool = False  # torn down; otherwise `pwrun down` tries again

    def blocks_command(self, action: str) -> str:
        """A shell command listing (or cancelling) this executor's jobs on the site."""
        if self.scheduler == "pbs":
            return self._pbs_blocks_command(action)
        ids = (
            "squeue -h -u \"$(id -un)\" -o '%i %o' | "
            f"awk -v d={shlex.quote(self.remote_dir + '/')} 'index($2, d) == 1 {{print $1}}'"
        )
        if action == "list":
            return ids
        return f'ids=$({ids}); [ -z "$ids" ] || scancel $ids'

    def _pbs_blocks_command(self, action: str) -> str:
        """PBS: the job ids the executor recorded (`JOBS_FILE`); listed are those qstat shows
        neither completed (C, E, F, X) nor gone, cancelled is each of them (qdel of an ended
        job fails, harmlessly)."""
        jobs = shlex.quote(posixpath.join(self.remote_dir, JOBS_FILE))
        if action == "list":
            return (
                f"[ ! -s {jobs} ] || qstat $(cat {jobs}) 2>/dev/null | "
                "awk 'table && NF >= 5 && $5 !~ /^[CEFX]$/ {print $1} /^---/ {table = 1}'"
            )
        return f'[ ! -s {jobs} ] || for id in $(cat {jobs}); do qdel "$id" 2>/dev/null; done'

    def teardown(self) -> None:
        """Close the tunnel (also its login-node end, should that have outlived it), cancel
        leftover blocks, remove remote temporaries and the run's files on the site, end the
        ssh. An unreachable site fails within ssh's timeouts (pwrun.transport.ssh.LIVENESS)."""
        opened = tunnel.load(self.tunnel)
        if opened:
            opened.close()
        self.tunnel_state = TunnelState.CLOSED
        remote_dir = shlex.quote(self.remote_dir)
        run_dir = posixpath.dirname(self.remote_dir)
        store = shlex.quote(posixpath.join(run_dir, STORE_DIR))
        try:  # the run's directory goes with its last executor's
            self.ssh.run(
                f"{tunnel.end_remote(self.tunnel)}; {self.blocks_command('cancel')};"
                f" rm -rf -- {remote_dir} {store}; rmdir -- {shlex.quote(run_dir)} 2>/dev/null;"
                " true"
            )
        finally:
            self.ssh.close()
        self.down = True


@dataclass
class RunRecord:
    """A run's identity, state and footprint, saved to its directory after every change."""

    directory: Path
    workflow: str
    process: ProcessRef = field(default_factory=ProcessRef.current)
    status: RunStatus = RunStatus.STARTING
    executors: list[ExecutorRecord] = field(default_factory=list)
    interchanges: list[ProcessRef] = field(default_factory=list)  # Parsl's local interchanges
    started_clusters: list[StartedCluster] = field(default_factory=list)  # stopped at teardown
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    resumed_from: str | None = None  # the run whose checkpoints this one reuses
    teardown_started: float | None = field(default=None, repr=False)  # perf_counter, not saved

    @property
    def id(self) -> str:
        return self.directory.name

    def save(self) -> None:
        with _SAVING:  # executors connect in threads of their own
            self._write()

    def _write(self) -> None:
        data = asdict(self)
        data["directory"] = str(self.directory)
        del data["teardown_started"]
        state.write_atomic(self.directory / RECORD, json.dumps(data, indent=1))

    def add(self, executor: ExecutorRecord) -> None:
        """Record an executor before its tunnel or remote files exist."""
        with _SAVING:
            self.executors.append(executor)
            self._write()

    def add_started(self, cluster: StartedCluster) -> None:
        """Record a cluster before pwrun asks the platform to start it."""
        with _SAVING:
            self.started_clusters.append(cluster)
            self._write()

    def set_status(self, status: RunStatus) -> None:
        self.status = status
        self.save()

    @contextlib.contextmanager
    def stage(self, name: RunStatus) -> Iterator[None]:
        """Mark the run as being in stage `name` and record how long the stage took."""
        self.set_status(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
            self.save()

    @classmethod
    def load(cls, directory: Path) -> RunRecord | None:
        """The run recorded in `directory`; None, with one warning, if the record is unreadable."""
        data = state.read_record(directory / RECORD)
        if data is None:
            return None
        try:
            return cls._from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            warn(f"{directory / RECORD}: not a run record ({type(exc).__name__}: {exc}); skipped")
            return None

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> RunRecord:
        executors = []
        for executor in data.pop("executors"):
            ssh = executor.pop("ssh")
            ssh["options"] = tuple(ssh["options"])  # JSON has lists; SSHTarget is hashable
            state = TunnelState(executor.pop("tunnel_state", TunnelState.CLOSED))
            executors.append(ExecutorRecord(**executor, ssh=SSHTarget(**ssh), tunnel_state=state))
        return cls(
            **{
                **data,
                "directory": Path(data["directory"]),
                "process": ProcessRef(**data["process"]),
                "status": RunStatus(data["status"]),
                "executors": executors,
                "interchanges": [ProcessRef(**ref) for ref in data["interchanges"]],
                "started_clusters": [
                    StartedCluster(**started) for started in data.get("started_clusters", [])
                ],
            }
        )

    def process_alive(self) -> bool:
        """True while the pwrun process that made this run is still running it."""
        return self.process.alive()

    def state_text(self) -> str:
        """Its status, marked `(dead)` when the pwrun process that ran it is gone."""
        return self.status.value if self.process_alive() else f"{self.status.value} (dead)"

    def set_tunnel(self, label: str, tunnel_state: TunnelState, reconnects: int) -> None:
        """Record the state of an executor's tunnel (from the thread that watches it)."""
        with _SAVING:
            for executor in self.executors:
                if executor.label == label:
                    executor.tunnel_state, executor.reconnects = tunnel_state, reconnects
            self._write()

    def teardown(self) -> list[str]:
        """Undo everything recorded, all sites at once (a site's executors one by one: they share
        its connection); return one message per executor that could not be cleaned. Those stay
        recorded (not `down`), for a later `pwrun down`."""
        start = self.teardown_started or time.perf_counter()
        for interchange in self.interchanges:  # gone with the DFK; left when pwrun was killed
            interchange.stop(grace=0)

        def undo(executors: list[ExecutorRecord]) -> list[str]:
            problems = []
            for executor in executors:
                try:
                    executor.teardown()
                except InfrastructureError as exc:
                    problems.append(
                        f"{executor.label}: {exc} (still recorded: its Slurm jobs, tunnel end and"
                        f" {executor.remote_dir}; `pwrun down {self.id}` once {executor.site}"
                        " answers)"
                    )
            return problems

        sites: dict[str, list[ExecutorRecord]] = {}
        for executor in self.executors:
            if not executor.down:
                sites.setdefault(executor.site, []).append(executor)
        problems = [found for each in run_each(sites.values(), undo, 16) for found in each]
        stopped = stop_all(self.started_clusters)  # the clusters it could not stop stay recorded
        self.started_clusters = [c for c in self.started_clusters if c.name in stopped.failed]
        problems += stopped.problems
        self.timings["teardown"] = round(time.perf_counter() - start, 3)
        self.set_status(RunStatus.TEARDOWN_FAILED if problems else RunStatus.DOWN)
        return problems


@dataclass(frozen=True)
class ExecutorStatus:
    """One executor of a run that is not torn down, as `pwrun status` shows it."""

    run: str
    state: str
    executor: str  # its label
    site: str
    tunnel: str  # its end on the site and its state
    reconnects: str
    blocks: str  # Slurm job ids, or `unreachable`


def statuses(ssh_timeout: float = 10) -> list[ExecutorStatus]:
    """Every executor not torn down of every run: its tunnel, and its Slurm jobs as the site
    lists them (asked of all sites at once; an unreachable one says so within `ssh_timeout`,
    or sooner: pwrun.transport.ssh.LIVENESS)."""
    runs = [record for record in all_runs() if record.status is not RunStatus.DOWN]
    executors = [(r, executor) for r in runs for executor in r.executors if not executor.down]

    def blocks(executor: ExecutorRecord) -> str:
        try:
            listed = executor.ssh.run(
                executor.blocks_command("list"), timeout=ssh_timeout, check=False
            )
        except InfrastructureError:
            return "unreachable"
        return " ".join(listed.stdout.split()) if listed.returncode == 0 else "unreachable"

    listed = run_each([executor for _, executor in executors], blocks, 16)
    rows = []
    for (record, executor), jobs in zip(executors, listed, strict=True):
        opened = tunnel.load(executor.tunnel)
        alive = opened is not None and opened.alive()
        where = f"{opened.remote_address}:{opened.remote_port} " if opened and alive else ""
        watched = executor.tunnel_state if record.process_alive() else None  # else none watches
        shown = watched or (TunnelState.OPEN if alive else TunnelState.CLOSED)
        rows.append(ExecutorStatus(record.id, record.state_text(), executor.label, executor.site,
                                   where + shown, str(executor.reconnects), jobs))  # fmt: skip
    rows += [
        ExecutorStatus(record.id, record.state_text(), "", "", "", "", "")
        for record in runs
        if not any(not executor.down for executor in record.executors)
    ]
    return rows


def all_runs() -> list[RunRecord]:
    """Every recorded run, oldest first."""
    directories = sorted(d for d in state.runs_dir().glob("*") if (d / RECORD).exists())
    return [record for d in directories if (record := RunRecord.load(d)) is not None]
