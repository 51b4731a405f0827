"""`pwrun run` across two lab sites: tasks run where their labels say, nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pwrun.lab import Lab
from tests.conftest import started_here
from tests.run import invoke
from tests.run.invoke import WORKFLOWS, pwrun

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
ONE_SITE = WORKFLOWS / "one_site.executors.yml"


def start_slow_run(
    lab: Lab, home: Path, *args: str, executors: Path = ONE_SITE
) -> subprocess.Popen:
    """`pwrun run` of slow.py on the lab (tests.run.invoke); returns once it waits."""
    return invoke.start_slow_run(home, *args, "-e", str(executors), "-i", str(lab.inventory))


def processes_here(pattern: str) -> list[str]:
    """This test session's processes whose command line matches `pattern` (pgrep -af)."""
    found = subprocess.run(["pgrep", "-af", "--", pattern], capture_output=True, text=True)
    assert found.returncode in (0, 1), found.stderr  # 1: none matched
    return [line for line in found.stdout.splitlines() if started_here(int(line.split()[0]))]


def assert_nothing_left_here(lab: Lab) -> None:
    """No tunnel, interchange or ssh connection to the lab on this machine."""
    for pattern in ("-R 127.0.0.1:", "HTEX interchange", f"{lab.directory}.*mux"):
        left = processes_here(pattern)
        assert left == [], f"left behind: {left}"


def assert_nothing_left(lab: Lab) -> None:
    """Nothing here (`assert_nothing_left_here`); no block or run directory on any site."""
    assert_nothing_left_here(lab)
    for site in lab.sites:
        proc = lab.ssh(site, "squeue -h -u pwlab; ls -A ~/.pwrun/runs 2>/dev/null; true")
        assert proc.stdout.strip() == "", f"{site.name}: left {proc.stdout!r}"


def down_leaves_nothing(lab: Lab, home: Path) -> None:
    """`pwrun down` in `home` tears every run down: nothing left (`assert_nothing_left`)."""
    down = pwrun("down", home=home)
    assert down.returncode == 0 and "torn down" in down.stdout, down.stdout + down.stderr
    assert_nothing_left(lab)


def test_multisite_run(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    canaries = {
        "PW_API_KEY": "pwt_canary_key",
        "PW_AUTH": "pwt_canary_under_another_name",
        "AWS_SECRET_ACCESS_KEY": "canary_aws_secret",
        "SSHPASS": "canary_sshpass",
        "DATABASE_URL": "postgres://u:canary_db_password@db/x",
        "GH_PAT": "ghp_canary_pat",
    }
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    inventory = yaml.safe_load(lab.inventory.read_text())
    passwords = {"ansible_password": "canary_ssh_pw", "ansible_become_password": "canary_become"}
    inventory["all"]["vars"].update(passwords)  # Ansible would need sshpass if it saw the first
    inventory_file = tmp_path / "inventory.yml"
    inventory_file.write_text(yaml.safe_dump(inventory))
    canaries.update(passwords)
    proc = pwrun(
        "run", str(ROOT / "examples/multisite.py"),
        "-e", str(ROOT / "examples/multisite.executors.yml"), "-i", str(inventory_file),
        home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next((tmp_path / "state" / "runs").iterdir())
    assert {p.name for p in run_dir.iterdir()} >= {"run.json", "config.txt", "runinfo"}
    for path in run_dir.rglob("*"):  # runner artifacts record the environment: secrets blanked
        if path.is_file():
            text = path.read_bytes()
            assert not any(v.encode() in text for v in canaries.values()), path
    lines = proc.stdout.splitlines()
    a, b = lab.sites
    compute_nodes = {f"{n.hostname}/compute" for n in a.computes}
    mapped = [line.removeprefix("map ran on ") for line in lines if line.startswith("map ran")]
    assert len(mapped) == 8 and set(mapped) <= compute_nodes
    assert lines[-1] == f"sum of squares 140 computed on {b.computes[-1].hostname}/gpu"
    assert_nothing_left(lab)


def test_unknown_site_is_a_clear_error(lab: Lab, tmp_path: Path) -> None:
    executors = tmp_path / "executors.yml"
    executors.write_text("map:\n  site: site-z\n")
    proc = pwrun("run", str(ROOT / "examples/hello.py"), "-e", str(executors),
                 "-i", str(lab.inventory), home=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert "map.site: no cluster 'site-z' in the inventory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_workflow_failure_is_its_exit_code_and_teardown_runs(lab: Lab, tmp_path: Path) -> None:
    proc = pwrun("run", str(WORKFLOWS / "fails.py"), "-e", str(ONE_SITE), "-i", str(lab.inventory),
                 home=tmp_path)  # fmt: skip
    assert proc.returncode == 1
    assert "the app failed on purpose" in proc.stderr
    assert_nothing_left(lab)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_group_ctrl_c_or_sigterm_mid_run_tears_down_in_seconds(
    lab: Lab, tmp_path: Path, signum: int
) -> None:
    """A terminal's Ctrl-C (or `timeout`'s SIGTERM) reaches the whole process group."""
    proc = start_slow_run(lab, tmp_path)
    try:
        assert lab.ssh("site-a", "squeue -h -u pwlab").stdout.strip(), "no block was running"
        started = time.monotonic()
        os.killpg(proc.pid, signum)
        assert proc.wait(timeout=120) == 130
        assert time.monotonic() - started < 20, "teardown took too long"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.stderr is not None and "interrupted: torn down" in proc.stderr.read()
    assert_nothing_left(lab)


def test_sites_get_the_client_keys_and_no_server_secret(lab: Lab, tmp_path: Path) -> None:
    proc = start_slow_run(lab, tmp_path)
    try:
        run_dir = next((tmp_path / "state" / "runs").iterdir())
        local = (run_dir / "certificates" / "server.key_secret").read_text()
        secret = next(line for line in local.splitlines() if "secret-key" in line).strip()
        listing = lab.ssh("site-a", "cd ~/.pwrun/runs/*/map/certificates && stat -c '%a %n' *")
        assert sorted(listing.stdout.split("\n")[:-1]) == [
            "600 client.key_secret", "600 server.key_secret"
        ], listing.stdout + listing.stderr  # fmt: skip
        remote = lab.ssh("site-a", "cat ~/.pwrun/runs/*/map/certificates/server.key_secret")
        assert secret not in remote.stdout and "public-key" in remote.stdout
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    assert_nothing_left(lab)


def test_kill_9_then_pwrun_down_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    proc = start_slow_run(lab, tmp_path)
    proc.kill()
    proc.wait()
    status = pwrun("status", home=tmp_path)
    assert "(dead)" in status.stdout and "map" in status.stdout, status.stdout + status.stderr
    down_leaves_nothing(lab, tmp_path)
    assert "map" not in pwrun("status", home=tmp_path).stdout


def test_local_and_remote_labels_in_one_run(lab: Lab, tmp_path: Path) -> None:
    """A label on the local site runs here, beside a cluster's label; no inventory entry needed."""
    executors = tmp_path / "executors.yml"
    executors.write_text(
        "map:\n  site: site-a\n  partition: compute\n  max_workers_per_node: 2\n"
        "gpu:\n  site: local\n  max_workers_per_node: 1\n"
    )
    proc = pwrun("run", str(ROOT / "examples/multisite.py"), "-e", str(executors),
                 "-i", str(lab.inventory), home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1].startswith("sum of squares 140 computed on ")
    assert proc.stdout.splitlines()[-1].endswith("/None")  # not a Slurm job: this machine
    assert_nothing_left(lab)


def test_provision_reports_each_cluster(lab: Lab, tmp_path: Path) -> None:
    proc = pwrun("provision", "-i", str(lab.inventory), "-l", "site-b", home=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = next(line for line in proc.stdout.splitlines() if "site-b" in line)
    assert ".pwrun/envs/parsl-" in row and "compute,gpu" in row
    unknown = pwrun("provision", "-i", str(lab.inventory), "-l", "site-z", home=tmp_path)
    assert unknown.returncode == 2
    assert "no cluster site-z in the inventory" in unknown.stderr
