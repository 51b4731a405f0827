"""ansible-runner for real, on this machine's own `localhost` (no root, no lab): a cluster that
fails provisioning is named with its cause, and Ansible's artifacts hold no secret."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pwrun.errors import InfrastructureError
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
