"""Fixtures of the inventory tests: a PW API emulator with realistic clusters, and runners for
`ansible-inventory` and `pwrun inventory` as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pwrun.provision.inventory import unwrap
from tests.emulators.pw_api import PwApiEmulator, pw_cluster

REPO = Path(__file__).resolve().parents[2]
PW_KEY = "pwt_s3cr3tK3yForTests0123456789"


def sample_clusters() -> list[dict[str, Any]]:
    """On and off pools, one on-premise via its login node, and one lacking most fields."""
    onprem = pw_cluster(
        "onprem", type="slurmshv2", ip=None, user=None, private_ip="ens5", tags="onprem"
    )
    onprem["variables"].update(slurmLoginNode="login.hpc.example.org", scheduler="PBS")
    bare = {"name": "bare", "namespace": "alice", "type": "azclusterv2", "status": "on"}
    return [
        pw_cluster("gcpslurmv2"),
        pw_cluster("awsoff", type="pclusterv2", status="off", tags="aws,slurm"),
        onprem,
        bare,
    ]


@pytest.fixture
def pw_api() -> Iterator[PwApiEmulator]:
    with PwApiEmulator(api_key=PW_KEY, username="alice") as api:
        api.clusters.extend(sample_clusters())
        yield api


@pytest.fixture
def pw_env(pw_api: PwApiEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Environment pointing at the emulator; HOME is empty so no real key file is read."""
    home = tmp_path / "home"
    home.mkdir()
    values = {"PW_PLATFORM_HOST": pw_api.url, "PW_API_KEY": PW_KEY, "HOME": str(home)}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PARSL_CLIENT_HOST", raising=False)
    return dict(os.environ)


@pytest.fixture
def write_inventory(tmp_path: Path) -> Callable[..., Path]:
    """Write an inventory file (default name clusters.pwrun.yml) and return its path."""

    def write(text: str, name: str = "clusters.pwrun.yml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def run(command: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command from the repository (its ansible.cfg) and assert the key never leaks."""
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert PW_KEY not in result.stdout + result.stderr
    return result


@pytest.fixture
def ansible_inventory(pw_env: dict) -> Callable[..., subprocess.CompletedProcess]:
    """`ansible-inventory -i FILE ARGS...`, with extra environment variables."""

    def invoke(path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
        bindir = Path(sys.executable).parent
        return run([str(bindir / "ansible-inventory"), "-i", str(path), *args], {**pw_env, **env})

    return invoke


def pwrun(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python3 -m pwrun.cli ARGS...` of this tree, as a subprocess."""
    command = [sys.executable, "-m", "pwrun.cli", *args]
    return run(command, {**env, "COLUMNS": "200", "PYTHONPATH": str(REPO)}, timeout)


@pytest.fixture
def pwrun_cli(pw_env: dict) -> Callable[..., subprocess.CompletedProcess]:
    """`pwrun ARGS...` as a subprocess, against the PW emulator."""

    def invoke(*args: str, **env: str) -> subprocess.CompletedProcess:
        return pwrun(*args, env={**pw_env, **env})

    return invoke


def inventory_json(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return unwrap(json.loads(result.stdout))
