"""A lab of simulated HPC sites on this machine, for tests, molecule scenarios and benchmarks.

Each site is a login node (sshd with key-only login and ``GatewayPorts no``, slurmctld) and one
or more compute nodes (slurmd), each in its own network, UTS, mount and PID namespaces. Compute
nodes reach only their login node; no node reaches the workstation (the root namespace), another
site or the internet; the workstation reaches a site only by ssh to its login node. Everything a
lab makes lives in its directory, its namespaces and one nftables table per site, and `down()`
removes all of it. Needs root and the Debian packages that ``tests/all.sh`` installs.

Modules: `model` (nodes, sites, names, addresses, lab.json), `render` and ``templates/`` (config
files, firewall rules), `files` (what goes on disk), `network` (namespaces, links, nftables),
`processes` (node inits, /proc), `lifecycle` (up, down, waiting), `node_init` (a node's PID 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pwrun.lab import lifecycle
from pwrun.lab.lifecycle import down_all
from pwrun.lab.model import LabError, LabRecord, Node, Site

__all__ = ["Lab", "LabError", "Node", "Site", "down_all"]


class Lab(LabRecord):
    """A running lab: its directory, sites and the ssh files that reach them."""

    @classmethod
    def up(
        cls,
        sites: int = 2,
        compute_nodes: int = 1,
        directory: Path | None = None,
        scheduler: str = "slurm",
    ) -> Self:
        """Bring up `sites` sites with `compute_nodes` compute nodes each; wait until usable.
        `scheduler` "torque" gives login nodes Slurm's Torque wrappers instead of its commands."""
        return lifecycle.up(cls, sites, compute_nodes, directory, scheduler)

    def down(self) -> None:
        """Remove everything the lab made: processes, namespaces, nftables tables, its directory."""
        lifecycle.down(self)

    def leftovers(self) -> list[str]:
        """What of this lab still exists (empty after a clean `down()`)."""
        return lifecycle.leftovers(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
