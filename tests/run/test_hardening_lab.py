"""Hardening on real sites: concurrent runs share a site's env build; a wrong private address
is named, not retried."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pwrun.cluster.pyenv import workstation_parsl
from pwrun.lab import Lab
from tests.run.invoke import pwrun_env
from tests.run.test_run_lab import ROOT, assert_nothing_left, pwrun

pytestmark = pytest.mark.lab


def test_an_env_build_waits_for_the_sites_lock(lab: Lab, tmp_path: Path) -> None:
    """Another run holding the site's env lock (as a concurrent build does) holds this one."""
    env = f"~/.pwrun/envs/parsl-{workstation_parsl()}"
    command = [sys.executable, "-m", "pwrun.cli", "provision", "-i", str(lab.inventory),
               "-l", "site-b"]  # fmt: skip
    warm = subprocess.run(command, cwd=tmp_path, env=pwrun_env(tmp_path), capture_output=True)
    assert warm.returncode == 0, warm.stderr  # the wheelhouse is cached on the workstation
    assert lab.ssh("site-b", "rm -rf ~/.pwrun/envs && mkdir -p ~/.pwrun/envs").returncode == 0
    hold = f"echo held; sleep 8; test -e {env}/bin && echo built || echo waited"
    holder = subprocess.Popen(
        ["ssh", "-F", str(lab.ssh_config), "site-b", f"flock {env}.lock sh -c '{hold}'"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    proc = subprocess.run(command, cwd=tmp_path, env=pwrun_env(tmp_path), capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert holder.communicate(timeout=60)[0].strip() == "waited", "the env was built under a lock"
    check = lab.ssh("site-b", f"{env}/bin/python -c 'import parsl; print(1)'")
    assert check.stdout.strip() == "1", check.stderr


def test_a_private_address_not_on_the_login_node_is_named(lab: Lab, tmp_path: Path) -> None:
    inventory = yaml.safe_load(lab.inventory.read_text())
    # TEST-NET-1: on no interface anywhere, so binding it fails at once and nothing is sent
    inventory["all"]["children"]["lab"]["hosts"]["site-a"]["pwrun_private_address"] = "192.0.2.1"
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    executors = tmp_path / "executors.yml"
    executors.write_text("map:\n  site: site-a\n")
    started = time.monotonic()
    proc = pwrun("run", str(ROOT / "examples/hello.py"), "-e", str(executors), "-i", str(path),
                 home=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "192.0.2.1 is not an address of the login node" in proc.stderr.replace("\n", "")
    assert "no free port" not in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60
    assert_nothing_left(lab)
