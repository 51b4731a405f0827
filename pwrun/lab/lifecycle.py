"""Bringing a lab up (files, network, node inits, then waiting until every site is usable) and
down, finding what is left of it, and removing every lab of the machine after a crash."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pwrun.cluster.pbs import parse_pbsnodes
from pwrun.lab import files, network, processes
from pwrun.lab.model import (
    COMMAND_DIR,
    LAB_NETNS,
    MAX_COMPUTE_NODES,
    MAX_SITES,
    SCHEDULERS,
    LabError,
    LabRecord,
    Node,
    Site,
    free_slots,
)
from pwrun.process import wait_until

SSHD_TIMEOUT = 20
SLURM_TIMEOUT = 60
POLL_INTERVAL = 0.05
SLOT_LOCK = Path("/run/pwrun-lab.lock")  # root's: the lab needs root; one for the machine
L = TypeVar("L", bound=LabRecord)


def up(
    kind: type[L], sites: int, compute_nodes: int, directory: Path | None, scheduler: str = "slurm"
) -> L:
    """A lab of `sites` sites with `compute_nodes` compute nodes each, whose login nodes offer
    `scheduler` (one of SCHEDULERS), usable (ssh answers, compute nodes idle); on any failure,
    what was made is removed."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts, nftables)")
    if not 1 <= sites <= MAX_SITES or not 1 <= compute_nodes <= MAX_COMPUTE_NODES:
        raise LabError(
            f"a lab has 1 to {MAX_SITES} sites of 1 to {MAX_COMPUTE_NODES} compute nodes"
        )
    if scheduler not in SCHEDULERS:
        raise LabError(f"unknown lab scheduler {scheduler!r} (one of {', '.join(SCHEDULERS)})")
    if scheduler == "torque" and not Path(COMMAND_DIR, "qsub").is_file():
        raise LabError("a torque lab needs Debian's slurm-wlm-torque (apt-get install it)")
    directory = Path(directory or tempfile.mkdtemp(prefix="pwrun-lab-"))
    directory.mkdir(parents=True, exist_ok=True)
    lab = kind(directory=directory.resolve())
    try:
        files.make_key(lab.key, "pwrun-lab")
        with _slot_lock():
            for index, slot in enumerate(free_slots(network.netns_names(), sites)):
                _create_site(lab, Site.named(index, slot, compute_nodes, scheduler))
        for site in lab.sites:
            _start_site(lab, site)
            lab.save()
        files.write_client(lab)
        _wait_ready(lab)
    except BaseException:
        down(lab)
        raise
    return lab


def down(lab: LabRecord) -> None:
    """Remove everything the lab made: processes, namespaces, nftables tables, its directory."""
    processes.kill_namespace_inits([n.init() for s in lab.sites for n in s.nodes])
    for site in lab.sites:
        network.remove(site)
    shutil.rmtree(lab.directory, ignore_errors=True)


def leftovers(lab: LabRecord) -> list[str]:
    """What of this lab still exists (empty after a clean `down()`)."""
    found = []
    namespaces = network.netns_names()
    tables = network.nft_tables()
    for site in lab.sites:
        found += [f"process {n.pid} ({n.hostname})" for n in site.nodes if n.init().alive()]
        found += network.leftovers(site, namespaces, tables)
    lab_netns = {n.netns for s in lab.sites for n in s.nodes}
    found += [f"process {ref.pid} in a lab namespace" for ref in processes.in_netns(lab_netns)]
    if lab.directory.exists():
        found.append(f"directory {lab.directory}")
    return found


def down_all() -> list[str]:
    """Remove every lab namespace and nftables table on this machine (after a crashed run)."""
    removed = []
    names = sorted(n for n in network.netns_names() if LAB_NETNS.fullmatch(n))
    processes.kill_namespace_inits(processes.in_netns(set(names)))  # one scan of /proc for all
    for name in names:
        processes.run("ip", "netns", "del", name)
        removed.append(f"network namespace {name}")
    for table in network.lab_tables():
        processes.run("nft", "delete", "table", "inet", table)
        removed.append(f"nftables table {table}")
    return removed


@contextlib.contextmanager
def _slot_lock() -> Iterator[None]:
    """Serialise slot allocation between labs brought up at the same time, whichever checkout
    or install of pwrun brings them up: one lock file for the machine, in root's /run."""
    fd = os.open(SLOT_LOCK, os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _create_site(lab: LabRecord, site: Site) -> None:
    """Make the site's files and network; its processes start later."""
    lab.sites.append(site)  # recorded first, so that down() undoes a half-made site
    lab.save()
    files.write_site(lab, site)
    network.create(site)


def _start_site(lab: LabRecord, site: Site) -> None:
    """Launch the site's node inits, login node first, each ready before the next."""
    munge = pwd.getpwnam("munge")
    common = {
        "etc": str(lab.site_dir(site) / "etc"),
        "home": str(lab.site_dir(site) / "home"),
        "hide": [str(p) for p in processes.hidden_paths(lab.directory)],
        "munge_uid": munge.pw_uid,
        "munge_gid": munge.pw_gid,
    }
    for node in site.nodes:
        node_dir = lab.node_dir(site, node)
        spec = {"hostname": node.hostname, "role": node.role, "var": str(node_dir), **common}
        if node is site.login and site.hidden_commands:
            spec |= {
                "hide_commands": list(site.hidden_commands),
                "command_dir": COMMAND_DIR,
                "whiteouts": str(node_dir / "hidden-commands"),
            }
        init = processes.launch_node(node.netns, node_dir, spec)
        node.pid, node.started = init.pid, init.started
        processes.wait_node_ready(node_dir)


def _wait_ready(lab: LabRecord) -> None:
    """Wait until every login node takes ssh and every compute node is idle in Slurm."""
    for site in lab.sites:
        _wait_site_ready(site)


def _wait_site_ready(site: Site) -> None:
    if not wait_until(lambda: _port_open(site.address, 22), SSHD_TIMEOUT, POLL_INTERVAL):
        raise LabError(f"{site.name}: sshd not up")
    expected = {n.hostname for n in site.computes}
    idle = _free_pbs_nodes if site.scheduler == "torque" else _idle_nodes
    if not wait_until(lambda: idle(site.login) >= expected, SLURM_TIMEOUT, POLL_INTERVAL):
        raise LabError(f"{site.name}: compute nodes did not register with slurmctld")


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _idle_nodes(login: Node) -> set[str]:
    proc = login.exec("sinfo -h -N -o '%N %t'", timeout=10)
    return {
        name
        for name, state in (line.split() for line in proc.stdout.splitlines())
        if state == "idle"
    }


def _free_pbs_nodes(login: Node) -> set[str]:
    """Nodes whose state `pbsnodes -a` says is free (the Torque wrappers' idle)."""
    proc = login.exec("pbsnodes -a", timeout=10)
    return {name for name, node in parse_pbsnodes(proc.stdout).items() if node["state"] == "free"}
