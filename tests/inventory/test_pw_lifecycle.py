"""PW cluster lifecycle against the emulator's state machines: every API generation, a cluster
that never comes up, an API error mid-wait, a refused start, through the library and the CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pwrun.errors import InfrastructureError, PwrunError
from pwrun.inventory.pw.lifecycle import PwClusters, StartedCluster, start_and_wait, stop_all
from tests.emulators.pw_api import PwApiEmulator, pw_cluster
from tests.inventory.conftest import PW_KEY, REPO

GENERATIONS = ("current", "v3", "legacy")
START = {
    "current": ("POST", "/api/organizations/emulated/users/alice/clusters/cold/provision"),
    "v3": ("POST", "/api/compute/clusters/alice/cold/sessions"),
    "legacy": ("GET", "/api/resources/start"),
}
STOP = {
    "current": ("POST", "/api/organizations/emulated/users/alice/clusters/cold/stop"),
    "v3": ("DELETE", "/api/compute/clusters/alice/cold/sessions"),
    "legacy": ("GET", "/api/resources/stop"),
}


@pytest.fixture(params=GENERATIONS)
def platform(request, pw_env, monkeypatch, tmp_path: Path) -> Iterator[tuple[str, PwApiEmulator]]:
    """An emulated platform of one generation with one off cluster (`cold`) and one on."""
    generation = request.param
    with PwApiEmulator(api_key=PW_KEY, current=generation == "current") as api:
        api.v3 = generation != "legacy"
        api.clusters += [pw_cluster("cold", status="off", ip="192.0.2.10"), pw_cluster("warm")]
        monkeypatch.setenv("PW_PLATFORM_HOST", api.url)
        monkeypatch.setenv("PWRUN_HOME", str(tmp_path / "state"))
        yield generation, api


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "clusters.pwrun.yml"
    path.write_text("plugin: pwrun\nsources:\n  pw:\n    retries: 0\n")
    return path


def test_start_waits_then_stop(platform, inventory: Path) -> None:
    generation, api = platform
    api.start_delay = 0.5
    seen: list[list[str]] = []
    recorded: list[StartedCluster] = []
    started = start_and_wait(
        inventory, ["cold", "warm"], 10, recorded.append,
        lambda powers: seen.append([p.describe() for p in powers]), interval=0.1,
    )  # fmt: skip
    assert [s.name for s in started] == ["cold"] and recorded == started  # warm was on already
    assert started[0].api == generation
    assert START[generation] in api.actions and len(api.actions) == 1
    on = {"current": "cold on (active)", "v3": "cold on (running)", "legacy": "cold on"}
    assert seen[-1][0] == on[generation]
    assert any(line[0].startswith("cold starting") or line[0].startswith("cold off")
               for line in seen[:-1])  # fmt: skip
    powers = PwClusters(inventory).powers(["cold"])
    assert (powers["cold"].state, powers["cold"].address) == ("on", "192.0.2.10")

    assert stop_all(started).problems == []
    assert api.actions[-1] == STOP[generation]
    assert PwClusters(inventory).powers(["cold"])["cold"].state == "off"
    assert not api.key_in_url and api.unauthorized == 0


def test_current_api_resumes_a_cluster_provisioned_before(pw_env, monkeypatch, inventory) -> None:
    with PwApiEmulator(api_key=PW_KEY, current=True) as api:
        api.clusters.append(pw_cluster("cold", status="off"))
        api.clusters[0]["_deployed"] = True  # stopped, not new: today's API says "stopped"
        monkeypatch.setenv("PW_PLATFORM_HOST", api.url)
        assert PwClusters(inventory).powers(["cold"])["cold"].describe() == "cold off (stopped)"
        start_and_wait(inventory, ["cold"], 5, lambda s: None, lambda p: None, interval=0.1)
        assert api.actions == [("POST", START["current"][1].replace("provision", "resume"))]


def test_cluster_that_never_comes_up(platform, inventory: Path) -> None:
    generation, api = platform
    api.never_up = {"cold"}
    started: list[StartedCluster] = []
    began = time.monotonic()
    with pytest.raises(InfrastructureError) as caught:
        start_and_wait(inventory, ["cold"], 1, started.append, lambda p: None, interval=0.1)
    assert 1 <= time.monotonic() - began < 5
    message = str(caught.value)
    assert message.startswith("cluster not on within 1 s: cold ")
    assert ("starting" if generation != "legacy" else "off") in message
    assert [s.name for s in started] == ["cold"]
    assert stop_all(started).problems == []  # what the CLI and a run's teardown do with it
    assert api.actions == [START[generation], STOP[generation]]
    assert PwClusters(inventory).powers(["cold"])["cold"].state == "off"


def test_api_error_mid_wait(platform, inventory: Path) -> None:
    _, api = platform
    api.start_delay = 30
    api.wait_error = (400, "the cluster's quota was exceeded")
    with pytest.raises(InfrastructureError) as caught:
        start_and_wait(inventory, ["cold"], 10, lambda s: None, lambda p: None, interval=0.1)
    message = str(caught.value)
    assert message.startswith("cluster cold: GET ")
    assert message.endswith("HTTP 400 Bad Request: the cluster's quota was exceeded")
    assert PW_KEY not in message


def test_refused_start_names_the_cluster_and_the_api(platform, inventory: Path) -> None:
    generation, api = platform
    api.start_fails = {"cold": (409, "no capacity in us-central1")}
    with pytest.raises(InfrastructureError) as caught:
        start_and_wait(inventory, ["cold"], 10, lambda s: None, lambda p: None)
    assert str(caught.value).startswith(f"cluster cold: {START[generation][0]} {api.url}")
    assert "HTTP 409 Conflict: no capacity in us-central1" in str(caught.value)


def test_unknown_cluster(platform, inventory: Path) -> None:
    with pytest.raises(PwrunError, match=r"no PW cluster 'nope' on the platform \(clusters: "):
        PwClusters(inventory).powers(["nope"])


def test_inventory_without_pw_source(tmp_path: Path) -> None:
    path = tmp_path / "aws.pwrun.yml"
    path.write_text("plugin: pwrun\nsources:\n  aws:\n    regions: [us-east-1]\n")
    with pytest.raises(PwrunError, match="no 'pw' source: only PW clusters can be started"):
        PwClusters(path)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "pwrun.cli", "clusters", *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert PW_KEY not in result.stdout + result.stderr
    return result


def test_cli(pw_env, monkeypatch, inventory: Path, tmp_path: Path) -> None:
    """start (with its progress lines), status, stop; a late cluster: exit 3, stopped again."""
    with PwApiEmulator(api_key=PW_KEY, current=True) as api:
        api.clusters += [pw_cluster("cold", status="off", ip="192.0.2.10"), pw_cluster("slow")]
        api.clusters[1].update(_phase="off", status="off", controllerIp=None, _deployed=False)
        env = {**pw_env, "PW_PLATFORM_HOST": api.url, "PWRUN_HOME": str(tmp_path / "state")}
        api.start_delay = 1
        started = cli("start", "cold", "-i", str(inventory), env=env)
        assert started.returncode == 0, started.stderr
        assert "clusters: cold starting (provisioning)" in started.stderr
        assert "clusters: cold on (active)" in started.stderr
        assert started.stdout == "on: cold\n"
        status = cli("status", "cold", "slow", "-i", str(inventory), env=env)
        assert status.returncode == 0
        rows = [
            line.split() for line in status.stdout.splitlines() if "cold" in line or "slow" in line
        ]
        assert [row[1:-1] for row in rows] == [
            ["cold", "│", "on", "│", "active", "│", "192.0.2.10"],
            ["slow", "│", "off", "│", "off", "│"],
        ]
        stopped = cli("stop", "cold", "-i", str(inventory), env=env)
        assert stopped.returncode == 0 and stopped.stdout == "off: cold\n"

        api.never_up = {"slow"}
        late = cli("start", "cold", "slow", "-i", str(inventory), "--timeout", "1", env=env)
        assert late.returncode == 3
        assert late.stderr.splitlines()[-1] == (
            "error: cluster not on within 1 s: slow starting (provisioning)"
        )
        states = {c["name"]: c["_phase"] for c in api.clusters}
        assert states == {"cold": "off", "slow": "off"}  # both stopped: this command started them
