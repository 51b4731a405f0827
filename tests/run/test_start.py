"""`pwrun run --start` without a lab: what fails before any ssh (a cluster that never comes up,
an off cluster that is not PW's) leaves nothing started behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.emulators.pw_api import PwApiEmulator, pw_cluster
from tests.inventory.conftest import PW_KEY

WORKFLOWS = Path(__file__).with_name("workflows")
OWNED = "/api/organizations/emulated/users/alice/clusters/cold"


def run(tmp_path: Path, inventory: Path, *extra: str) -> subprocess.CompletedProcess:
    executors = tmp_path / "x.executors.yml"
    executors.write_text("job:\n  site: cold\n")
    env = {**os.environ, "PW_API_KEY": PW_KEY, "PWRUN_HOME": str(tmp_path / "state")}
    result = subprocess.run(
        [sys.executable, "-m", "pwrun.cli", "run", str(WORKFLOWS / "slow.py"), "job",
         "-e", str(executors), "-i", str(inventory), *extra],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert PW_KEY not in result.stdout + result.stderr
    return result


def test_cluster_that_never_comes_up(tmp_path: Path) -> None:
    with PwApiEmulator(api_key=PW_KEY, current=True) as api:
        api.clusters.append(pw_cluster("cold", status="off"))
        api.never_up = {"cold"}
        inventory = tmp_path / "x.pwrun.yml"
        inventory.write_text(
            yaml.safe_dump({"plugin": "pwrun", "sources": {"pw": {"host": api.url}}})
        )
        without = run(tmp_path, inventory)
        assert without.returncode == 2
        assert "x.executors.yml: job.site: cluster 'cold' is off; start it first" in without.stderr
        assert api.actions == []

        result = run(tmp_path, inventory, "--start", "--start-timeout", "1")
        assert result.returncode == 3, result.stderr
        assert "error: cluster not on within 1 s: cold starting (provisioning)" in result.stderr
        assert api.actions == [("POST", f"{OWNED}/provision"), ("POST", f"{OWNED}/stop")]
        assert api.clusters[0]["_phase"] == "off"
        [record] = (tmp_path / "state" / "runs").glob("*/run.json")
        saved = json.loads(record.read_text())
        assert (saved["status"], saved["started_clusters"]) == ("down", [])


def test_only_pw_clusters_are_started(tmp_path: Path) -> None:
    inventory = tmp_path / "static.yml"
    cold = {"ansible_host": "192.0.2.1", "pwrun_status": "off", "pwrun_source": "aws"}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"cold": cold}}}))
    result = run(tmp_path, inventory, "--start")
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "job.site: cluster 'cold' is off, and --start starts PW clusters only"
    )
    assert not (tmp_path / "state" / "runs").exists() or not any(
        (tmp_path / "state" / "runs").iterdir()
    )


@pytest.mark.parametrize("how", ["ctrl-c", "kill -9"])
def test_interrupted_while_waiting(tmp_path: Path, how: str) -> None:
    """Ctrl-C (to the whole group) while a cluster starts: the teardown stops it, exit 130.
    kill -9: run.json says what was started, and `pwrun down` stops it."""
    with PwApiEmulator(api_key=PW_KEY, current=True) as api:
        api.clusters.append(pw_cluster("cold", status="off"))
        api.never_up = {"cold"}
        inventory = tmp_path / "x.pwrun.yml"
        document = {"plugin": "pwrun", "sources": {"pw": {"host": api.url}}}
        inventory.write_text(yaml.safe_dump(document))
        executors = tmp_path / "x.executors.yml"
        executors.write_text("job:\n  site: cold\n")
        env = {**os.environ, "PW_API_KEY": PW_KEY, "PWRUN_HOME": str(tmp_path / "state")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "pwrun.cli", "run", str(WORKFLOWS / "slow.py"), "job",
             "-e", str(executors), "-i", str(inventory), "--start"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
            start_new_session=True,
        )  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("clusters: cold starting"):
                break
        else:
            raise AssertionError(f"no progress line: {proc.communicate()[1]}")
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
            assert proc.wait(timeout=60) == 130
        else:
            proc.kill()
            proc.wait(timeout=10)
            assert api.clusters[0]["_phase"] == "starting"
            down = subprocess.run(
                [sys.executable, "-m", "pwrun.cli", "down"],
                capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
            )  # fmt: skip
            assert down.returncode == 0, down.stderr
        proc.communicate()
        assert api.actions == [("POST", f"{OWNED}/provision"), ("POST", f"{OWNED}/stop")]
        assert api.clusters[0]["_phase"] == "off"
        [record] = (tmp_path / "state" / "runs").glob("*/run.json")
        assert json.loads(record.read_text())["started_clusters"] == []
