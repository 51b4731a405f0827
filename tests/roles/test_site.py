"""site.yml against lab sites: bad clusters fail alone, half-made envs are repaired, check mode
changes nothing, and closing tunnels leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import parsl
import pytest

from pwrun.cluster.pyenv import workstation_python
from pwrun.lab import Lab
from pwrun.transport import tunnel
from tests.roles.conftest import run_site, write_inventory

pytestmark = pytest.mark.lab

ENV = f"/home/pwlab/.pwrun/envs/parsl-{parsl.__version__}"
TAKEN_PORT = 45123


def listening(node, port: int) -> bool:
    return f":{port} " in node.exec("ss -Hltn").stdout


def stops_listening(node, port: int, within: float = 5) -> bool:
    """The remote end closes asynchronously, moments after the local ssh process is gone."""
    deadline = time.monotonic() + within
    while listening(node, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def taken_port(lab: Lab):
    """Something already listens on site-b's internal address at TAKEN_PORT."""
    site = lab.site("site-b")
    server = (
        f'python3 -c \'import socket,time; s=socket.create_server(("{site.internal_address}",'
        f" {TAKEN_PORT})); time.sleep(600)' >/dev/null 2>&1 & echo $!"
    )
    pid = site.login.exec(server, user="pwlab").stdout.strip()
    site.login.exec(
        f"for i in $(seq 50); do ss -Hltn | grep -q :{TAKEN_PORT} && break; sleep 0.1; done"
    )
    yield TAKEN_PORT
    site.login.exec(f"kill {pid}")


def test_bad_clusters_fail_alone_and_the_rest_converge(
    lab: Lab, tmp_path: Path, pwrun_home: Path, taken_port: int
) -> None:
    stranger_key = tmp_path / "stranger"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger_key)], check=True
    )
    (tmp_path / "empty_known_hosts").write_text("")
    site_b = lab.site("site-b").address
    pinned = lab.known_hosts.read_text().split("\n")[0].split(" ", 1)[1]
    inventory = write_inventory(
        lab,
        tmp_path / "inventory.yml",
        extra_hosts={
            "closed-port": {
                "ansible_host": "127.0.0.1",
                "ansible_port": 9,
                "ssh_access_host_keys": [pinned],
                "pwrun_private_address": "127.0.0.1",
            },
            "wrong-key": {
                "ansible_host": site_b,
                "ansible_user": "pwlab",
                "ansible_ssh_private_key_file": str(stranger_key),
            },
            "unpinned": {
                "ansible_host": site_b,
                "ansible_user": "pwlab",
                "ansible_ssh_common_args": f"-o UserKnownHostsFile={tmp_path}/empty_known_hosts",
            },
            "no-python": {
                "ansible_host": site_b,
                "ansible_user": "pwlab",
                "python_env_python": "python3.99",
                "ansible_python_interpreter": "/usr/bin/python3.99",
            },
        },
        **{"site-b": {"tunnel_remote_port": taken_port}},
    )
    user_config = "Host mine\n  HostName example.org\n"
    (tmp_path / "ssh").mkdir()
    (tmp_path / "ssh" / "config").write_text(user_config)
    run = run_site(inventory)
    recap = run.recap()
    assert recap["site-a"]["failed"] == 0 and recap["site-a"]["unreachable"] == 0, run.output
    assert recap["closed-port"]["unreachable"] == 1, run.output
    assert recap["wrong-key"]["unreachable"] == 1, run.output
    assert recap["unpinned"]["failed"] == 1, run.output
    assert recap["no-python"]["failed"] == 1, run.output
    assert recap["site-b"]["failed"] == 1, run.output
    for message in (
        "Connection refused",
        "Permission denied (publickey)",
        "unpinned (10.200",
        "no pinned host key",
        "no python3.99 on PATH",
        f"tunnel to port {taken_port} failed",
    ):
        assert message in run.output, f"{message!r} not in:\n{run.output}"
    assert "Traceback" not in run.output

    config = (tmp_path / "ssh" / "config").read_text()
    assert config.startswith(user_config) and "# BEGIN pwrun managed clusters" in config
    assert f"Host site-a\n  HostName {lab.site('site-a').address}\n  User pwlab\n" in config
    assert "ControlPersist" in config and "StrictHostKeyChecking yes" in config
    known = (tmp_path / "ssh" / "known_hosts").read_text()
    assert lab.known_hosts.read_text().splitlines()[0] in known

    opened = tunnel.load("site-a")
    assert opened and opened.alive()
    site_a = lab.site("site-a")
    assert listening(site_a.login, opened.remote_port)

    closed = run_site(inventory, "-e", "pwrun_clusters=site-a", playbook="playbooks/teardown.yml")
    assert closed.recap()["site-a"]["changed"] == 1, closed.output
    assert not opened.alive() and tunnel.load("site-a") is None
    assert not list((pwrun_home / "tunnels").glob("site-a*"))
    assert stops_listening(site_a.login, opened.remote_port)
    assert "site-a" in site_a.login.exec("hostname").stdout
    assert "ssh" not in site_a.login.exec(f"ss -Htnp | grep :{opened.remote_port} || true").stdout


def test_half_made_env_is_repaired_and_check_mode_changes_nothing(
    lab: Lab, tmp_path: Path, pwrun_home: Path
) -> None:
    inventory = write_inventory(lab, tmp_path / "inventory.yml")
    only_a = ("-e", "pwrun_clusters=site-a")
    assert run_site(inventory, *only_a).returncode == 0
    site = lab.site("site-a")
    # What an interrupted pip install leaves: no marker, some packages half there.
    site.login.exec(
        f"rm -f {ENV}/.pwrun-env.json && rm -rf {ENV}/lib/python3.11/site-packages/parsl "
        f"{ENV}/lib/python3.11/site-packages/typeguard",
        user="pwlab",
    )
    repaired = run_site(inventory, *only_a)
    assert repaired.recap()["site-a"]["changed"] > 0, repaired.output
    probe = site.computes[0].exec(
        f"{ENV}/bin/python -c 'import parsl, typeguard; print(parsl.__version__)'", user="pwlab"
    )
    assert probe.stdout.strip() == parsl.__version__, probe.stderr
    again = run_site(inventory, *only_a)
    assert again.recap()["site-a"]["changed"] == 0, again.output

    dead = tunnel.load("site-a")
    os.kill(dead.process.pid, signal.SIGKILL)
    replaced = run_site(inventory, *only_a)
    assert replaced.recap()["site-a"]["changed"] == 1, replaced.output
    fresh_tunnel = tunnel.load("site-a")
    assert fresh_tunnel.alive() and fresh_tunnel.process != dead.process
    assert fresh_tunnel.local_port == dead.local_port

    fresh = "/home/pwlab/.pwrun/envs/check-mode"
    checked = run_site(
        inventory,
        "--check",
        *only_a,
        "-e",
        f"python_env_path={fresh}",
        "-e",
        "tunnel_name=check-mode",
    )
    assert checked.returncode == 0, checked.output
    assert checked.recap()["site-a"]["changed"] > 0, checked.output
    assert site.login.exec(f"test -e {fresh}").returncode == 1
    assert tunnel.load("check-mode") is None
    facts = json.loads(site.login.exec(f"cat {ENV}/.pwrun-env.json", user="pwlab").stdout or "{}")
    assert facts["requirements"] == [f"parsl=={parsl.__version__}"]


def test_conda_and_flux_paths_fail_clearly_and_plan_in_check_mode(
    lab: Lab, tmp_path: Path, pwrun_home: Path
) -> None:
    """Conda channels are unreachable here: the conda path is exercised up to them (check mode)."""
    inventory = write_inventory(lab, tmp_path / "inventory.yml")
    only_b = ("-e", "pwrun_clusters=site-b")
    flux = run_site(inventory, *only_b, "-e", "flux_install=true")
    assert flux.recap()["site-b"]["failed"] == 1
    assert "flux-core is installed from conda" in flux.output
    assert "python_env_backend: conda" in flux.output

    conda = ("-e", "python_env_backend=conda")
    no_installer = run_site(inventory, *only_b, *conda)
    assert no_installer.recap()["site-b"]["failed"] == 1
    assert "no conda at /home/pwlab/.pwrun/miniforge3 and no installer" in no_installer.output

    installer = tmp_path / "Miniforge3-Linux-x86_64.sh"
    installer.write_text("#!/bin/sh\nexit 1\n")
    planned = run_site(
        inventory, "--check", "--diff", *only_b, *conda,
        "-e", f"python_env_conda_installer_file={installer}",
    )  # fmt: skip
    assert planned.returncode == 0, planned.output
    assert planned.recap()["site-b"]["changed"] > 0
    for line in (f"python={workstation_python()}", "--no-index", f"parsl=={parsl.__version__}"):
        assert line in planned.output, f"{line!r} not in the planned environment.yml"
    # a label's own environment.yml: planned with conda too, the workstation's Parsl added
    label_env = {"labels": ["ml"], "environment": "dependencies: [numpy-probe]\n"}
    with_label = run_site(
        inventory, "--check", "--diff", *only_b, *conda,
        "-e", f"python_env_conda_installer_file={installer}",
        "-e", json.dumps({"python_env_label_envs": [label_env]}),
    )  # fmt: skip
    assert with_label.returncode == 0, with_label.output
    planned_label = with_label.output.split(f"parsl-{parsl.__version__}-", 1)[-1]
    for line in ("numpy-probe", f"python={workstation_python()}", f"parsl=={parsl.__version__}"):
        assert line in planned_label, f"{line!r} not in the label's planned environment.yml"
    site = lab.site("site-b")
    assert site.login.exec("test -e /home/pwlab/.pwrun/miniforge3").returncode == 1


def test_disk_full_fails_clearly_and_a_rerun_repairs(lab: Lab, tmp_path: Path, pwrun_home: Path):
    """The env on a 6 MB filesystem: the install runs out of space; with room, a re-run works."""
    site = lab.site("site-b")
    small = "/tmp/pwrun-small"
    mount = site.login.exec(f"mkdir -p {small} && mount -t tmpfs -o size=6m,mode=1777 x {small}")
    assert mount.returncode == 0, mount.stderr
    try:
        inventory = write_inventory(lab, tmp_path / "inventory.yml")
        args = ("-e", "pwrun_clusters=site-b", "-e", f"python_env_path={small}/env")
        full = run_site(inventory, *args)
        assert full.recap()["site-b"]["failed"] == 1, full.output
        assert "making the Parsl env at /tmp/pwrun-small/env failed" in full.output
        assert "disk full" in full.output, full.output[-2500:]
        assert "Traceback" not in full.output
        site.login.exec(f"mount -o remount,size=200m {small}")
        repaired = run_site(inventory, *args)
        assert repaired.recap()["site-b"]["failed"] == 0, repaired.output
        probe = site.login.exec(
            f"{small}/env/bin/python -c 'import parsl; print(parsl.__version__)'", user="pwlab"
        )
        assert probe.stdout.strip() == parsl.__version__, probe.stderr
    finally:
        site.login.exec(f"umount {small}")
