"""Hardening on real sites: concurrent runs share a site's env build; a wrong private address
is named, not retried."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pwrun.lab import Lab
from tests.run.test_run_lab import ROOT, assert_nothing_left, pwrun, pwrun_env

pytestmark = pytest.mark.lab


def test_concurrent_runs_build_a_missing_env_once(lab: Lab, tmp_path: Path) -> None:
    assert lab.ssh("site-b", "rm -rf ~/.pwrun/envs").returncode == 0
    command = [sys.executable, "-m", "pwrun.cli", "provision", "-i", str(lab.inventory),
               "-l", "site-b"]  # fmt: skip
    homes = [tmp_path / "one", tmp_path / "two"]
    procs = []
    for home in homes:
        home.mkdir()
        procs.append(subprocess.Popen(command, cwd=home, env=pwrun_env(home), text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))  # fmt: skip
    outcomes = [(proc.communicate(timeout=600)[1], proc.returncode) for proc in procs]
    assert [code for _, code in outcomes] == [0, 0], outcomes
    check = lab.ssh("site-b", "~/.pwrun/envs/parsl-*/bin/python -c 'import parsl; print(1)'")
    assert check.stdout.strip() == "1", check.stderr
    built = lab.ssh("site-b", "ls -A ~/.pwrun/envs")
    assert ".partial" not in built.stdout


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
