"""PID 1 of one lab node (login or compute), started inside the node's namespaces.

Run as ``unshare --uts --mount --pid --fork --mount-proc ... python3 -I node_init.py SPEC``
inside the node's network namespace. It gives the node its hostname and its own views of
/etc, /home, /var, /tmp and /run, hides the workstation's files, starts the node's daemons,
then reaps orphans forever. One SIGKILL to this process ends every process of the node.

Standard library only: it runs under the system python3 and must not import anything after
the workstation's paths are hidden.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from typing import Any


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


def bind(source: str, target: str) -> None:
    sh("mount", "--bind", source, target)


def tmpfs(target: str, mode: str = "755") -> None:
    sh("mount", "-t", "tmpfs", "-o", f"mode={mode}", "tmpfs", target)


def make_views(spec: dict[str, Any]) -> None:
    """Mount the node's own /etc, /home and /var directories, private /tmp and /run."""
    bind(spec["etc"], "/etc")
    bind(spec["home"], "/home")
    for name, target in (
        ("log", "/var/log"),
        ("spool", "/var/spool"),
        ("munge", "/var/lib/munge"),
    ):
        bind(os.path.join(spec["var"], name), target)
    for path in spec["hide"]:
        if os.path.isdir(path):
            tmpfs(path, "700")
    tmpfs("/tmp", "1777")
    tmpfs("/run")
    os.makedirs("/run/munge", mode=0o755)
    os.chown("/run/munge", spec["munge_uid"], spec["munge_gid"])
    for path in ("/run/sshd", "/run/slurm"):
        os.makedirs(path, mode=0o755)
    os.makedirs("/run/lock")


def hide_commands(names: list[str], command_dir: str, whiteouts: str) -> None:
    """Take `names` out of `command_dir` in this node's view: a read-only overlay whose upper
    layer holds a whiteout (a 0/0 character device) per name. Everything else stays as it is."""
    os.makedirs(whiteouts, mode=0o755)
    for name in names:
        os.mknod(os.path.join(whiteouts, name), stat.S_IFCHR, os.makedev(0, 0))
    layers = f"lowerdir={whiteouts}:{command_dir}"
    sh("mount", "-t", "overlay", "overlay", "-o", layers, command_dir)


def mount_cgroup_for_slurmd() -> None:
    """slurmd 22.05 initialises its cgroup plugin even with proctrack/linuxproc."""
    tmpfs("/sys/fs/cgroup")
    os.makedirs("/sys/fs/cgroup/systemd")
    sh("mount", "-t", "cgroup", "-o", "none,name=systemd", "cgroup", "/sys/fs/cgroup/systemd")


def start_daemons(role: str) -> None:
    sh("runuser", "-u", "munge", "--", "/usr/sbin/munged")
    if role == "login":
        sh("/usr/sbin/sshd", "-f", "/etc/ssh/sshd_config", "-E", "/var/log/sshd.log")
        sh("/usr/sbin/slurmctld")
    else:
        sh("/usr/sbin/slurmd")


def reap_forever() -> None:
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(1)


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    socket.sethostname(spec["hostname"])
    if spec.get("hide_commands"):  # before make_views hides the lab directory that holds them
        hide_commands(spec["hide_commands"], spec["command_dir"], spec["whiteouts"])
    make_views(spec)
    if spec["role"] == "compute":
        mount_cgroup_for_slurmd()
    start_daemons(spec["role"])
    print("ready", flush=True)
    reap_forever()


if __name__ == "__main__":
    main()
