"""What a lab is made of: nodes, sites and the lab record, with their names and addresses.

Slot N (1..MAX_SLOTS) gives a site its names: network namespaces ``pwlabN`` (login) and
``pwlabNcK`` (compute node K), the workstation's veth ``pwlNw``, the nftables table
``pwrun_lab_N``, the link 10.200.N.0/24 to the workstation and the internal 10.201.N.0/24.
"""

from __future__ import annotations

import json
import re
import string
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

from pwrun.process import ProcessRef
from pwrun.state import read_record, write_atomic

LAB_USER = "pwlab"
LAB_UID = 4242
PARTITIONS = ("compute", "gpu")
# A site's scheduler as its users meet it: Slurm itself, or Slurm behind Debian's Torque
# wrappers (slurm-wlm-torque: qsub, qstat, qdel, pbsnodes) with Slurm's own query and cancel
# commands hidden from the login node's PATH (qsub still calls sbatch, salloc and srun).
SCHEDULERS = ("slurm", "torque")
HIDDEN_ON_TORQUE = ("sinfo", "squeue", "scancel", "sacct", "scontrol")
COMMAND_DIR = "/usr/bin"  # where Debian puts Slurm's and the wrappers' commands (/bin links here)
NETNS_PREFIX = "pwlab"
NFT_TABLE_PREFIX = "pwrun_lab_"
MAX_SLOTS = 200
MAX_SITES = len(string.ascii_lowercase)
MAX_COMPUTE_NODES = 8
STATE_FILE = "lab.json"
LAB_NETNS = re.compile(rf"{NETNS_PREFIX}(\d+)(c\d+)?")


class LabError(RuntimeError):
    """The lab could not be brought up or down."""


@dataclass
class Node:
    """One host of a site: its namespace, hostname, address and its init (PID and start time:
    a PID alone may name another process once the node is gone)."""

    hostname: str
    netns: str
    address: str
    role: str
    pid: int = 0
    started: int = 0  # the init's start time in clock ticks (ProcessRef)

    def init(self) -> ProcessRef:
        return ProcessRef(self.pid, self.started)

    def enter(self) -> list[str]:
        """argv prefix that runs a command inside this node, as root."""
        return ["nsenter", "-t", str(self.pid), "-a"]

    def exec(
        self, command: str, user: str = "root", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on this node (as `user`) and return the finished process."""
        as_user = [] if user == "root" else ["runuser", "-u", user, "--"]
        argv = [*self.enter(), *as_user, "bash", "-c", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


@dataclass
class Site:
    """A simulated cluster: a login node and its compute nodes."""

    name: str
    slot: int
    login: Node
    computes: list[Node]
    outer_veth: str
    nft_table: str
    scheduler: str = "slurm"  # one of SCHEDULERS

    @classmethod
    def named(cls, index: int, slot: int, compute_nodes: int, scheduler: str = "slurm") -> Site:
        """The `index`-th site of a lab (site-a, site-b...) in `slot`, before it runs."""
        name = f"site-{string.ascii_lowercase[index]}"
        login = Node(f"{name}-login", f"{NETNS_PREFIX}{slot}", f"10.200.{slot}.2", "login")
        computes = [
            Node(f"{name}-c{k}", f"{NETNS_PREFIX}{slot}c{k}", f"10.201.{slot}.{10 + k}", "compute")
            for k in range(1, compute_nodes + 1)
        ]
        return cls(
            name, slot, login, computes, f"pwl{slot}w", f"{NFT_TABLE_PREFIX}{slot}", scheduler
        )

    @property
    def address(self) -> str:
        """The login node's address as the workstation sees it."""
        return self.login.address

    @property
    def internal_address(self) -> str:
        """The login node's address on the site's internal network (what compute nodes reach)."""
        return f"10.201.{self.slot}.1"

    @property
    def workstation_address(self) -> str:
        """The workstation's end of the link to this site."""
        return f"10.200.{self.slot}.1"

    @property
    def nodes(self) -> list[Node]:
        return [self.login, *self.computes]

    @property
    def hidden_commands(self) -> tuple[str, ...]:
        """Commands the login node's users must not find on their PATH."""
        return HIDDEN_ON_TORQUE if self.scheduler == "torque" else ()


def free_slots(netns_names: set[str], count: int) -> list[int]:
    """The `count` lowest slots that no lab namespace among `netns_names` uses."""
    taken = {int(m.group(1)) for name in netns_names if (m := LAB_NETNS.fullmatch(name))}
    free = [n for n in range(1, MAX_SLOTS + 1) if n not in taken]
    if len(free) < count:
        raise LabError("no free lab slots (stale labs? run `pwrun lab down --all`)")
    return free[:count]


@dataclass
class LabRecord:
    """A lab's directory and sites, the files it writes for its users, and its `lab.json`."""

    directory: Path
    sites: list[Site] = field(default_factory=list)

    @property
    def key(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    @property
    def inventory(self) -> Path:
        return self.directory / "inventory.yml"

    def site_dir(self, site: Site) -> Path:
        """Where a site's own /etc, home and per-node /var live."""
        return self.directory / "sites" / site.name

    def node_dir(self, site: Site, node: Node) -> Path:
        """A node's /var (logs, spools, munge state), init spec and init log."""
        return self.site_dir(site) / "nodes" / node.hostname

    def site(self, name: str) -> Site:
        return next(s for s in self.sites if s.name == name)

    def ssh(
        self, site: Site | str, command: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` on a site's login node over real ssh, host-key checking on."""
        name = site if isinstance(site, str) else site.name
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), name, command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def save(self) -> None:
        write_atomic(self.directory / STATE_FILE, json.dumps(asdict(self), default=str, indent=1))

    @classmethod
    def load(cls, directory: Path) -> Self:
        """The lab whose state is in `directory` (up in one process, down in another)."""
        record = Path(directory) / STATE_FILE
        fix = "`pwrun lab down --all` removes every lab"
        data = read_record(record)  # says why it cannot be read
        if data is None:
            raise LabError(f"{record}: unreadable lab record; {fix}")
        try:
            return cls._from_json(data)
        except (KeyError, TypeError) as exc:
            raise LabError(f"{record}: unreadable lab record ({exc}); {fix}") from None

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Self:
        sites = [
            Site(
                **{
                    **s,
                    "login": Node(**s["login"]),
                    "computes": [Node(**c) for c in s["computes"]],
                }
            )
            for s in data["sites"]
        ]
        return cls(directory=Path(data["directory"]), sites=sites)
