"""Shared fixtures: the lab of simulated Slurm sites (root only)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from pwrun.lab import Lab

LAB_TOOLS = ("slurmctld", "slurmd", "munged", "sshd", "nft", "unshare", "nsenter")


def require_lab() -> None:
    """Skip when not root; fail loudly when root but the lab's packages are missing."""
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces, mounts, nftables); run as root")
    missing = [t for t in LAB_TOOLS if not shutil.which(t) and not os.path.exists(f"/usr/sbin/{t}")]
    if missing:
        pytest.fail(f"lab packages missing ({', '.join(missing)}): run .ci/install first")


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """Two sites, each a login node and two compute nodes, shared by the lab tests."""
    require_lab()
    with Lab.up(sites=2, compute_nodes=2) as running:
        yield running
