"""What the hardening fixed, without root: untrusted inventory data, the environment Ansible
sees, inventory files as users give them, bad site settings, and a terminal's Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pwrun.process import ProcessRef
from pwrun.provision.content import allowed_env
from pwrun.provision.inventory import read_inventory, unwrap
from pwrun.provision.runner import write_snapshot
from tests.emulators.pw_api import PwApiEmulator, pw_cluster
from tests.run.invoke import start_slow_run

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = Path(__file__).with_name("workflows")
KEY = "pwt_hardening0123456789"


def pwrun(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pwrun.cli", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd,
        env={**os.environ, "PWRUN_HOME": str(cwd / "state"), **(env or {})},
    )  # fmt: skip


# ---- API values stay untrusted on their way back to Ansible ------------------------------


def test_api_values_are_never_templated_in_the_provisioning_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touched = tmp_path / "touched"
    hostile = f"ns{{{{ lookup('pipe', 'touch {touched}') }}}}"
    cluster = pw_cluster("hostile")
    cluster["namespace"] = hostile
    with PwApiEmulator(api_key=KEY) as api:
        api.clusters.append(cluster)
        monkeypatch.setenv("PW_PLATFORM_HOST", api.url)
        monkeypatch.setenv("PW_API_KEY", KEY)
        monkeypatch.setenv("HOME", str(tmp_path))
        source = tmp_path / "clusters.pwrun.yml"
        source.write_text(
            "plugin: pwrun\nsources:\n  pw:\ncompose:\n  ansible_connection: \"'local'\"\n"
            "  ansible_python_interpreter: ansible_playbook_python\n"
        )
        inventory = read_inventory(source)
    assert inventory.hosts["hostile"]["pwrun_namespace"] == hostile  # pwrun's own, plain view
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: 'namespace={{ pwrun_namespace }}'\n"
    )

    def play(snapshot: dict) -> str:
        path = write_snapshot(snapshot, tmp_path / "inventory.json")
        proc = subprocess.run(
            ["ansible-playbook", "-i", str(path), str(playbook)],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    output = play(inventory.ansible_hosts)  # what provisioning hands Ansible
    assert not touched.exists()
    assert "touch" in output  # shown literally
    play(unwrap(inventory.ansible_hosts))  # the old snapshot: marks stripped
    assert touched.exists(), "control: an unmarked snapshot does run the lookup"


# ---- the environment Ansible (and ansible-runner's artifacts) sees -------------------------


def test_ansible_gets_an_allow_listed_environment() -> None:
    kept = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_FORKS": "4",
        "SSH_AUTH_SOCK": "/tmp/agent",
        "https_proxy": "http://proxy:3128",
    }
    dropped = {
        "HTTP_PROXY": "http://user:hunter2@proxy:3128",
        "PIP_INDEX_URL": "https://u:tok@pypi.internal/simple",
        "PW_AUTH": "pwt_secret",
        "SSHPASS": "hunter2",
        "DATABASE_URL": "postgres://u:pw@db/x",
        "GH_PAT": "ghp_x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "MY_OWN_VAR": "y",
    }
    added = {"ANSIBLE_CONFIG": "/x/ansible.cfg", "JOB_ID": "1"}
    assert allowed_env({**kept, **dropped}, added) == {**kept, **added}


def test_connection_passwords_stay_out_of_the_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostvars = {
        "a": {
            "ansible_host": "10.0.0.1",
            "ansible_password": "hunter2",
            "ansible_become_password": "hunter3",
            "ansible_ssh_pass": "hunter4",
            "pwrun_status": "on",
        }
    }
    snapshot = write_snapshot(hostvars, tmp_path / "inventory.json")
    text = snapshot.read_text()
    assert "hunter" not in text
    assert json.loads(text)["all"]["hosts"]["a"] == {
        "ansible_host": "10.0.0.1",
        "pwrun_status": "on",
    }
    assert "ansible_become_password, ansible_password, ansible_ssh_pass not used" in (
        capsys.readouterr().err.replace("\n", "")
    )


# ---- inventory files as users give them ----------------------------------------------------


def executors(tmp_path: Path, site: str = "sleepy") -> Path:
    path = tmp_path / "executors.yml"
    path.write_text(f"map:\n  site: {site}\n")
    return path


def test_a_relative_inventory_path_is_read(tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text(
        "all:\n  hosts:\n    sleepy:\n      ansible_host: 10.0.0.1\n      pwrun_status: 'off'\n"
    )
    executors(tmp_path)
    proc = pwrun("run", str(ROOT / "examples/hello.py"), "-e", "executors.yml",
                 "-i", "inventory.yml", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert "cluster 'sleepy' is off" in proc.stderr  # read: it was not "no cluster"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("clusters.yml", "plugin: pwrun\nsources:\n  pw:\n", "must be named *.pwrun.yml"),
        ("inventory.yml", "all: [\n", "YAML parsing failed"),
        ("inventory.ini", "[x\nhost ansible_host=\n", "Failed to parse inventory"),
    ],
)
def test_an_inventory_no_plugin_can_read_is_an_error(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    proc = pwrun("run", str(ROOT / "examples/hello.py"), "-e", str(executors(tmp_path)),
                 "-i", name, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and str(tmp_path / name) in error[0], proc.stderr
    assert "no cluster" not in proc.stderr and "Traceback" not in proc.stderr
    assert message in error[0]


# ---- bad site settings are refused before anything is made ---------------------------------


@pytest.mark.parametrize(
    ("host_vars", "message"),
    [
        ("ansible_host: '-oProxyCommand=touch {canary}'", "ssh target: '-oProxyCommand"),
        ("ansible_host: 10.0.0.1\n      ansible_user: 'u;touch {canary}'", "ssh target:"),
        ("ansible_host: 10.0.0.1\n      pwrun_private_address: eth0",
         "pwrun_private_address: 'eth0' is not an IP address"),
        ("ansible_host: login.example.org", "ansible_host: 'login.example.org' is not an IP"),
    ],
)  # fmt: skip
def test_bad_site_settings_fail_before_anything_is_made(
    tmp_path: Path, host_vars: str, message: str
) -> None:
    canary = tmp_path / "canary"
    (tmp_path / "inventory.yml").write_text(
        "all:\n  hosts:\n    site-x:\n      " + host_vars.format(canary=canary) + "\n"
    )
    proc = pwrun("run", str(ROOT / "examples/hello.py"), "-e", str(executors(tmp_path, "site-x")),
                 "-i", "inventory.yml", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "inventory host site-x: " in proc.stderr and message in proc.stderr, proc.stderr
    assert not canary.exists() and "Traceback" not in proc.stderr
    assert not (tmp_path / "state" / "runs").exists() or not any(
        (tmp_path / "state" / "runs").iterdir()
    )


# ---- a terminal's Ctrl-C: the whole process group is signalled -----------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_group_signal_tears_a_local_run_down_within_seconds(tmp_path: Path, signum: int) -> None:
    proc = start_slow_run(tmp_path, "local")
    try:
        run_dir = next((tmp_path / "state" / "runs").iterdir())
        interchanges = [ProcessRef(**r) for r in json.loads((run_dir / "run.json").read_text())
                        ["interchanges"]]  # fmt: skip
        assert interchanges and all(ref.alive() for ref in interchanges)
        started = time.monotonic()
        os.killpg(proc.pid, signum)  # what a terminal's Ctrl-C (or `timeout`) does
        assert proc.wait(timeout=60) == 130
        assert time.monotonic() - started < 15
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not any(ref.alive() for ref in interchanges)
    left = subprocess.run(["pgrep", "-af", str(run_dir)], capture_output=True, text=True).stdout
    assert left == "", f"left behind: {left}"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "down"


# ---- a failing inventory source is said, not hidden ----------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_a_failing_source_is_named_by_run_and_provision(tmp_path: Path, strict: bool) -> None:
    with PwApiEmulator(api_key=KEY) as api:
        api.status = 500
        (tmp_path / "clusters.pwrun.yml").write_text(
            "plugin: pwrun\n" + ("strict_sources: true\n" if strict else "")
            + "sources:\n  pw:\n    retries: 0\n"
        )  # fmt: skip
        env = {"PW_PLATFORM_HOST": api.url, "PW_API_KEY": KEY, "HOME": str(tmp_path)}
        executors(tmp_path, "site-a")
        runs = [
            pwrun("run", str(ROOT / "examples/hello.py"), "-e", "executors.yml",
                  "-i", "clusters.pwrun.yml", cwd=tmp_path, env=env),
            pwrun("provision", "-i", "clusters.pwrun.yml", cwd=tmp_path, env=env),
        ]  # fmt: skip
    for proc in runs:
        stderr = proc.stderr.replace("\n", "")
        assert proc.returncode == 2, proc.stderr
        assert "inventory source 'pw': GET " in stderr and "HTTP 500" in stderr, proc.stderr
        assert "Traceback" not in proc.stderr and KEY not in proc.stderr + proc.stdout
        if strict:  # the source's failure is the error
            error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
            assert len(error) == 1 and "inventory source 'pw'" in error[0], proc.stderr
        else:  # a warning names the source, then: nothing to run on
            assert "warning:" in proc.stderr
    if not strict:
        assert "no cluster 'site-a' in the inventory (known: none)" in runs[0].stderr
        assert "no cluster is on (clusters: none)" in runs[1].stderr.replace("\n", "")
