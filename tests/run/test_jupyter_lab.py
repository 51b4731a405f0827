"""`pwrun jupyter` on a lab site: JupyterLab from the site's env, on the controller or in a Slurm
job, reached through the forward with its token (HTTP, and a headless Chromium that renders
JupyterLab's page), then a process-group Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from pwrun.lab import Lab
from pwrun.process import wait_until
from tests.run.invoke import pwrun_env
from tests.run.test_run_lab import assert_nothing_left, processes_here

pytestmark = pytest.mark.lab
CHROMIUM = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", "--disable-dev-shm-usage", "--virtual-time-budget=30000")  # fmt: skip


def start_jupyter(lab: Lab, home: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`pwrun jupyter site-a ARGS` in a process group of its own; returns once it prints its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pwrun.cli", "jupyter", "site-a", "-i", str(lab.inventory), *args],
        stdout=subprocess.PIPE, stderr=(home / "stderr").open("w"), text=True, cwd=home,
        env=pwrun_env(home), start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("JupyterLab: "):
            return proc, line.removeprefix("JupyterLab: ").strip()
    proc.wait(timeout=60)
    raise AssertionError(f"no URL, exit {proc.returncode}: {(home / 'stderr').read_text()[-3000:]}")


def chromium(*args: str) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is missing (tests/all.sh APT_PACKAGES)"
    return subprocess.run([browser, *CHROMIUM, *args], capture_output=True, text=True, timeout=180)


def jupyter_on_site(lab: Lab) -> str:
    """JupyterLab's processes on site-a's login node (the pattern does not match itself)."""
    return lab.ssh(lab.sites[0], "pgrep -af '[j]upyter-lab'; true").stdout.strip()


@pytest.mark.parametrize("where", [("--controller",), ("--partition", "compute")])
def test_jupyterlab_through_the_forward_then_ctrl_c_leaves_nothing(
    lab: Lab, tmp_path: Path, where: tuple[str, ...]
) -> None:
    proc, url = start_jupyter(lab, tmp_path, *where)
    try:
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1" and parts.path == "/lab", url
        token = parse_qs(parts.query)["token"][0]
        base = f"http://127.0.0.1:{parts.port}"
        assert (
            token
            not in (tmp_path / "state").joinpath("runs").glob("*/run.json").__next__().read_text()
        )

        api = requests.get(f"{base}/api/contents", headers={"Authorization": f"token {token}"})
        assert api.status_code == 200 and api.json()["type"] == "directory"
        refused = requests.get(f"{base}/api/contents", allow_redirects=False)
        assert refused.status_code == 403  # the token is needed
        kernels = requests.get(
            f"{base}/api/kernelspecs", headers={"Authorization": f"token {token}"}
        )
        assert "python3" in kernels.json()["kernelspecs"]
        page = requests.get(url)
        assert page.status_code == 200 and "JupyterLab" in page.text
        if where == ("--controller",):
            assert jupyter_on_site(lab), "no jupyter-lab process on the controller"

        dom = chromium("--dump-dom", url)
        assert "jp-LabShell" in dom.stdout, dom.stderr[-2000:]  # rendered by JupyterLab's JS
        shot = tmp_path / "jupyterlab.png"
        chromium("--window-size=1280,800", f"--screenshot={shot}", url)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C
        proc.wait(timeout=120)
    assert proc.returncode == 130, (tmp_path / "stderr").read_text()[-3000:]
    assert processes_here(f"-L 127.0.0.1:{parts.port}:") == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/api/status", timeout=5)
    assert wait_until(lambda: not jupyter_on_site(lab), 15), jupyter_on_site(lab)
    assert_nothing_left(lab)
