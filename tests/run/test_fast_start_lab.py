"""Warm sites start fast: a site whose recorded state holds skips ansible-runner; a changed
site still converges."""

from __future__ import annotations

from pathlib import Path

import pytest

from pwrun import state
from pwrun.lab import Lab
from tests.run.test_run_lab import ONE_SITE, ROOT, assert_nothing_left, pwrun

pytestmark = pytest.mark.lab


def run_once(lab: Lab, home: Path) -> Path:
    """`pwrun run` of hello.py on site-a; the run's directory."""
    before = set((home / "state" / "runs").glob("*")) if (home / "state").exists() else set()
    proc = pwrun("run", str(ROOT / "examples/hello.py"), "-e", str(ONE_SITE),
                 "-i", str(lab.inventory), home=home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = set((home / "state" / "runs").glob("*")) - before
    return run_dir


def test_a_warm_site_skips_ansible_and_a_changed_one_converges(lab: Lab, tmp_path: Path):
    run_once(lab, tmp_path)  # provisions (or finds the env ready) and records the site
    warm = run_once(lab, tmp_path)
    assert not (warm / state.ANSIBLE_DIR).exists(), "ansible-runner ran for a site that holds"
    assert lab.ssh("site-a", "rm -rf ~/.pwrun/envs").returncode == 0  # the env is gone
    changed = run_once(lab, tmp_path)
    assert (changed / state.ANSIBLE_DIR).is_dir(), "a changed site was not provisioned again"
    assert not (run_once(lab, tmp_path) / state.ANSIBLE_DIR).exists()
    assert_nothing_left(lab)
