"""`pwrun jupyter`'s input checks (no lab): one line, exit 2, nothing made; its env plan."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pwrun.jupyter import PACKAGE, with_jupyter

INVENTORY = """
all:
  hosts:
    site-a: {ansible_host: 10.0.0.1, ansible_user: alice}
    sleepy: {ansible_host: 10.0.0.2, pwrun_status: "off"}
"""


def jupyter(home: Path, *args: str) -> subprocess.CompletedProcess:
    (home / "hosts.yml").write_text(INVENTORY)
    return subprocess.run(
        [sys.executable, "-m", "pwrun.cli", "jupyter", *args, "-i", "hosts.yml"],
        capture_output=True, text=True, timeout=120, cwd=home,
        env={**os.environ, "PWRUN_HOME": str(home / "state")},
    )  # fmt: skip


def test_bad_requests_are_one_line_exit_2_and_make_nothing(tmp_path: Path) -> None:
    for args, message in [
        (("site-a", "--controller", "--partition", "gpu"), "--partition and --controller"),
        (("nope",), "hosts.yml: no cluster 'nope' in the inventory (known: site-a, sleepy)"),
        (("sleepy",), "hosts.yml: cluster 'sleepy' is off; start it first"),
    ]:
        proc = jupyter(tmp_path, *args)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert not list(tmp_path.glob("state/runs/*")), args


def test_jupyterlab_goes_into_an_env_of_its_own() -> None:
    hostvars = {"ansible_host": "10.0.0.1", "python_env_packages": ["numpy"]}
    planned = with_jupyter(hostvars)
    assert planned["python_env_packages"] == ["numpy", PACKAGE]
    assert planned["python_env_path"].startswith("~/.pwrun/envs/jupyter-parsl-")
    assert hostvars["python_env_packages"] == ["numpy"]  # the run's own hostvars are untouched
