"""`pip install .` gives a working `pwrun` that finds its Ansible content when installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_installed_pwrun_works_outside_the_source_tree(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # The dependencies come from this interpreter's site-packages; pwrun itself is built and
    # installed from the source tree like any user's `pip install .`.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    install = subprocess.run(
        [venv / "bin/pip", "install", "-q", "--no-deps", str(ROOT)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    help_text = subprocess.run([venv / "bin/pwrun", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0
    for command in ("run", "inventory", "provision", "config", "down", "status"):
        assert command in help_text.stdout
    version = subprocess.run([venv / "bin/pwrun", "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("pwrun ")
    content = subprocess.run(
        [venv / "bin/python", "-c", "from pwrun.provision.content import CONTENT; print(CONTENT)"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    installed = Path(content.stdout.strip())
    assert installed == venv / "share" / "pwrun"
    # the roles' filters, by FQCN
    filters = ".ansible/collections/ansible_collections/pwrun/hpc/plugins/filter"
    for path in ("site.yml", "ansible.cfg", "roles/tunnel/library/pwrun_tunnel.py",
                 "inventory_plugins/pwrun.py", "playbooks/ready.yml",
                 f"{filters}/pwrun_ssh.py"):  # fmt: skip
        assert (installed / path).is_file(), path
