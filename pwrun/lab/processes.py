"""The lab's processes: commands it runs, node inits it launches and kills, and what /proc says
about them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pwrun
from pwrun.lab.model import LabError
from pwrun.process import ProcessRef, wait_until

NODE_INIT = Path(__file__).with_name("node_init.py")
SYSTEM_PYTHON = "/usr/bin/python3"
NODE_NAMESPACES = ("unshare", "--uts", "--mount", "--pid", "--fork", "--kill-child",
                   "--mount-proc", "--propagation", "private")  # fmt: skip
INIT_START_TIMEOUT = 10
INIT_READY_TIMEOUT = 20
KILL_TIMEOUT = 10


def run(*argv: str, input: str | None = None) -> str:
    """Run a command, returning stdout; raise LabError with its stderr when it fails."""
    proc = subprocess.run(argv, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def source_tree() -> Path | None:
    """The source checkout pwrun runs from (None for an installed pwrun)."""
    root = Path(pwrun.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def hidden_paths(lab_dir: Path) -> list[Path]:
    """Workstation paths a site must not see: the user's home, /root, the current directory,
    the lab itself and pwrun's source tree."""
    candidates = [Path.home(), Path("/root"), Path.cwd(), lab_dir, source_tree()]
    return sorted({p for p in candidates if p and p.is_dir() and p != Path("/")})


def launch_node(netns: str, node_dir: Path, spec: dict[str, Any]) -> ProcessRef:
    """Launch a node's init (node_init.py) in `netns` and new UTS, mount and PID namespaces;
    return it. Its spec and log are in `node_dir`."""
    spec_file = node_dir / "init.json"
    spec_file.write_text(json.dumps(spec))
    with open(node_dir / "init.log", "w") as log:
        launcher = subprocess.Popen(
            ["ip", "netns", "exec", netns, *NODE_NAMESPACES,
             SYSTEM_PYTHON, "-I", str(NODE_INIT), str(spec_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return ProcessRef.of(_namespace_init_pid(launcher.pid))


def wait_node_ready(node_dir: Path) -> None:
    """Wait until the node's init says it is ready; LabError if it fails or takes too long."""
    if not wait_until(lambda: init_ready(node_dir), INIT_READY_TIMEOUT, interval=0.05):
        raise LabError(f"{node_dir.name} did not start (see its init.log)")


def _namespace_init_pid(launcher_pid: int) -> int:
    """The PID (as seen here) of the child `unshare --fork` made: PID 1 of the new namespace."""
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children")

    def child_pids() -> list[str]:
        try:
            return children.read_text().split()
        except FileNotFoundError:
            raise LabError(f"node launcher {launcher_pid} exited early") from None

    pids = wait_until(child_pids, INIT_START_TIMEOUT, interval=0.01)
    if not pids:
        raise LabError("node init did not start")
    return int(pids[0])


def init_ready(node_dir: Path) -> bool:
    """Whether a node's init said "ready" in its log; LabError with the log if it failed."""
    log = (node_dir / "init.log").read_text()
    if "Traceback" in log or "Error" in log:
        raise LabError(f"{node_dir.name} failed to start:\n{log}")
    return "ready" in log


def kill_namespace_inits(inits: list[ProcessRef]) -> None:
    """SIGKILL PID-namespace inits, which ends every process of their nodes; wait for them.
    A recorded init that is gone is skipped, even if its PID now names another process."""
    killed = []
    for init in filter(ProcessRef.alive, inits):
        try:
            os.kill(init.pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(init)
    if not wait_until(lambda: not any(map(ProcessRef.alive, killed)), KILL_TIMEOUT, interval=0.05):
        raise LabError(f"processes {[i.pid for i in killed if i.alive()]} survived SIGKILL")


def in_netns(namespaces: set[str]) -> list[ProcessRef]:
    """Processes whose network namespace is one of `namespaces` (by inode)."""
    inodes = set()
    for name in namespaces:
        handle = Path("/run/netns", name)
        if handle.exists():
            inodes.add(handle.stat().st_ino)
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.stat(proc / "ns" / "net").st_ino in inodes:
                    found.append(ProcessRef.of(int(proc.name)))
            except (OSError, ProcessLookupError):
                continue  # gone meanwhile
    return found
