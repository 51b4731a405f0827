"""PW clusters on the lab: a lab site behind the emulated platform's today's API. Its host key
comes from the API and is pinned (a wrong one is refused); `pwrun run --start` starts the off
cluster, runs a label on it and stops it at the end, after Ctrl-C too, and `pwrun down` stops it
after a kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pwrun.errors import InfrastructureError
from pwrun.lab import Lab
from pwrun.lab.model import LAB_USER
from pwrun.provision.inventory import read_inventory, ssh_target
from tests.emulators.pw_api import PwApiEmulator, pw_cluster
from tests.inventory.conftest import PW_KEY
from tests.run.test_run_lab import assert_nothing_left

pytestmark = pytest.mark.lab
WORKFLOWS = Path(__file__).with_name("workflows")
NAME = "pwlab"
OWNED = f"/api/organizations/emulated/users/alice/clusters/{NAME}"


def host_key(lab: Lab, index: int) -> str:
    """The real host key of lab site `index`, as its known_hosts pins it."""
    address = lab.sites[index].address
    for line in lab.known_hosts.read_text().splitlines():
        fields = line.split()
        if fields[0] == address:
            return f"{fields[1]} {fields[2]}"
    raise AssertionError(f"no key for {address}")


@pytest.fixture
def platform(lab: Lab, tmp_path: Path, monkeypatch) -> Iterator[tuple[PwApiEmulator, Path]]:
    """Today's PW API with one off cluster whose controller, once started, is lab site-a (the
    API gives its address, user and host key); an inventory file reaching it."""
    site = lab.sites[0]
    with PwApiEmulator(api_key=PW_KEY, current=True) as api:
        api.clusters.append(
            pw_cluster(NAME, status="off", ip=site.address, user=LAB_USER,
                       host_keys=[host_key(lab, 0)])
        )  # fmt: skip
        api.start_delay = 1
        inventory = tmp_path / "lab.pwrun.yml"
        compose = {  # what today's API does not say: the lab's key, internal address
            "ansible_ssh_private_key_file": repr(str(lab.key)),
            "pwrun_private_address": repr(site.internal_address),
            "ansible_python_interpreter": "'/usr/bin/python3'",
        }
        document = {"plugin": "pwrun", "sources": {"pw": {"host": api.url}}, "compose": compose}
        inventory.write_text(yaml.safe_dump(document))
        monkeypatch.setenv("PW_API_KEY", PW_KEY)
        monkeypatch.setenv("PWRUN_HOME", str(tmp_path / "state"))
        yield api, inventory


def test_host_key_from_the_api_is_pinned(lab: Lab, platform) -> None:
    api, inventory = platform
    api.clusters[0].update(_phase="on", status="on", controllerIp=lab.sites[0].address)
    hosts = read_inventory(inventory).hosts
    target = ssh_target(NAME, hosts[NAME])
    assert target.known_hosts and Path(target.known_hosts).is_file()
    assert target.run("hostname").stdout.strip() == lab.sites[0].login.hostname
    target.close()

    api.clusters[0]["_host_keys"] = [host_key(lab, 1)]  # a real key, of another site
    wrong = ssh_target(NAME, read_inventory(inventory).hosts[NAME])
    with pytest.raises(InfrastructureError, match="Host key verification failed"):
        wrong.run("hostname")


def pwrun(args: list[str], **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pwrun.cli", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=dict(os.environ), start_new_session=True, **popen,
    )  # fmt: skip


def executors(tmp_path: Path) -> Path:
    path = tmp_path / "pw.executors.yml"
    path.write_text(f"job:\n  site: {NAME}\n  partition: compute\n  max_workers_per_node: 1\n")
    return path


def run_record(tmp_path: Path) -> dict:
    [record] = (tmp_path / "state" / "runs").glob("*/run.json")
    return json.loads(record.read_text())


def test_run_start_runs_then_stops(lab: Lab, platform, tmp_path: Path) -> None:
    api, inventory = platform
    workflow = tmp_path / "where.py"
    workflow.write_text(
        "import parsl, pwrun\nfrom parsl import python_app\n\n"
        "@python_app(executors=['job'])\ndef where():\n    import socket\n"
        "    return socket.gethostname()\n\n"
        "parsl.load(pwrun.config())\nprint('ran on', where().result())\n"
    )
    proc = pwrun(["run", str(workflow), "-e", str(executors(tmp_path)), "-i", str(inventory),
                  "--start"], cwd=tmp_path)  # fmt: skip
    out, errors = proc.communicate(timeout=600)
    assert proc.returncode == 0, errors[-3000:]
    assert out.splitlines()[-1] in {f"ran on {node.hostname}" for node in lab.sites[0].computes}
    assert "clusters: pwlab starting (provisioning)" in errors
    assert "clusters: pwlab on (active)" in errors
    assert api.actions == [("POST", f"{OWNED}/provision"), ("POST", f"{OWNED}/stop")]
    assert api.clusters[0]["_phase"] == "off"
    record = run_record(tmp_path)
    assert record["status"] == "down" and record["started_clusters"] == []
    assert "clusters" in record["timings"]
    assert_nothing_left(lab)


@pytest.mark.parametrize("how", ["ctrl-c", "kill -9"])
def test_interrupted_run_stops_the_cluster(lab: Lab, platform, tmp_path: Path, how: str) -> None:
    """Ctrl-C (SIGINT to the whole process group): the teardown stops it; kill -9: run.json
    says what was started, and `pwrun down` stops it."""
    api, inventory = platform
    proc = pwrun(["run", str(WORKFLOWS / "slow.py"), "job", "-e", str(executors(tmp_path)),
                  "-i", str(inventory), "--start"], cwd=tmp_path)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "waiting":
            break
    else:
        raise AssertionError(
            f"the run ended early: {proc.stderr.read()[-3000:] if proc.stderr else ''}"
        )
    assert api.clusters[0]["_phase"] == "on"
    recorded = run_record(tmp_path)["started_clusters"]
    assert [(c["name"], c["api"], c["namespace"]) for c in recorded] == [(NAME, "current", "alice")]
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=120)
        assert proc.returncode == 130
    else:
        proc.kill()  # pwrun alone: its children (tunnel, interchange) are left for `down`
        proc.wait(timeout=30)
        assert api.clusters[0]["_phase"] == "on"  # nobody stopped it yet
        down = pwrun(["down"], cwd=tmp_path)
        _, errors = down.communicate(timeout=300)
        assert down.returncode == 0, errors
    assert api.clusters[0]["_phase"] == "off"
    assert api.actions[-1] == (
        "POST",
        "/api/organizations/emulated/users/alice/clusters/pwlab/stop",
    )
    assert run_record(tmp_path)["started_clusters"] == []
    assert_nothing_left(lab)
