"""ansible-runner for real, on this machine's own `localhost` (no root, no lab): a cluster that
fails provisioning is named with its cause, and Ansible's artifacts hold no secret."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pwrun.errors import InfrastructureError
from pwrun.process import wait_until
from pwrun.provision.runner import provision

CANARIES = {
    "PW_AUTH": "canary-pw-auth",
    "SSHPASS": "canary-sshpass",
    "DATABASE_URL": "postgres://u:canary-db-password@db/x",
    "GH_PAT": "canary-gh-pat",
    "HTTPS_PROXY": "http://u:canary-proxy-password@proxy:3128",
}


def test_a_failing_cluster_is_named_and_artifacts_hold_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PWRUN_HOME", str(tmp_path / "state"))
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    hostvars = {
        "here": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "python_env_python": "/nonexistent/python3",  # fails at once, in the first role
            "ansible_become_password": "canary-become",
        }
    }
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(InfrastructureError) as failed:
        provision(hostvars, run_dir)
    message = str(failed.value)
    assert message.startswith("provisioning failed: here: ")
    assert "no /nonexistent/python3 on PATH" in message and str(run_dir / "ansible") in message
    artifacts = [p for p in (run_dir / "ansible").rglob("*") if p.is_file()]
    assert any(p.name == "command" for p in artifacts)  # where runner records Ansible's env
    for path in artifacts:
        data = path.read_bytes()
        leaked = [v for v in [*CANARIES.values(), "canary-become"] if v.encode() in data]
        assert not leaked, f"{path}: {leaked}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_group_signal_stops_provisioning_and_what_it_started(tmp_path: Path, signum: int):
    """Ctrl-C from a terminal while a provisioning step hangs: Ansible and the step stop."""
    probing = tmp_path / "probing"
    hanging = tmp_path / "python3"  # the cluster's python3, hanging when asked its version
    hanging.write_text(f"#!/bin/sh\ntouch {probing}\nexec sleep 300 {probing}\n")
    hanging.chmod(0o755)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n    here:\n      ansible_connection: local\n"
        f"      ansible_host: 127.0.0.1\n      ansible_python_interpreter: {sys.executable}\n"
        f"      python_env_python: {hanging}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pwrun.cli", "provision", "-i", str(inventory)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "PWRUN_HOME": str(tmp_path / "state")}, start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_until(probing.exists, 120), proc.communicate(timeout=5)
        os.killpg(proc.pid, signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "interrupted: torn down" in stderr and "Traceback" not in stderr
    left = subprocess.run(["pgrep", "-af", str(probing)], capture_output=True, text=True).stdout
    assert left == "", f"left behind: {left}"
