"""Helpers for the role tests: run site.yml against lab sites, like a user would."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pwrun.lab import Lab
from pwrun.transport import tunnel

PROJECT = Path(__file__).resolve().parents[2]
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class PlaybookRun:
    returncode: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        """Per host: ok, changed, unreachable, failed."""
        keys = ("ok", "changed", "unreachable", "failed")
        return {
            m.group(1): dict(zip(keys, map(int, m.groups()[1:]), strict=True))
            for m in RECAP.finditer(self.output)
        }


@pytest.fixture
def pwrun_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private pwrun state directory (tunnel records, wheelhouse cache) for one test; the
    tunnels a test leaves open are closed after it."""
    home = tmp_path / "pwrun-home"
    monkeypatch.setenv("PWRUN_HOME", str(home))
    yield home
    for opened in tunnel.recorded():
        opened.close()


def write_inventory(lab: Lab, path: Path, extra_hosts: dict | None = None, **host_vars) -> Path:
    """The lab's inventory plus `extra_hosts`; `host_vars` maps a host to vars merged into it.

    The ssh_access role writes into files next to `path`, never the user's ~/.ssh.
    """
    inventory = yaml.safe_load(lab.inventory.read_text())
    lab_group = inventory["all"]["children"]["lab"]
    lab_group["hosts"].update(extra_hosts or {})
    for host, variables in host_vars.items():
        lab_group["hosts"][host].update(variables)
    lab_group["vars"] = {
        "ssh_access_config_file": str(path.parent / "ssh" / "config"),
        "ssh_access_known_hosts_file": str(path.parent / "ssh" / "known_hosts"),
    }
    path.write_text(yaml.safe_dump(inventory))
    return path


def run_site(inventory: Path, *args: str, playbook: str = "site.yml") -> PlaybookRun:
    """ansible-playbook from the project directory (its ansible.cfg), output captured."""
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), playbook, *args],
        cwd=PROJECT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(inventory.parent / "cp")},
    )  # fmt: skip
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr)
