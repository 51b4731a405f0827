"""A plain Parsl workflow with its own Config, which never imports pwrun, on two lab sites."""

from __future__ import annotations

from pathlib import Path

import pytest

from pwrun.lab import Lab
from tests.run.test_run_lab import WORKFLOWS, assert_nothing_left, pwrun

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("form", ["load", "with"])
def test_its_labels_run_on_the_mapped_sites_with_its_retries(
    lab: Lab, tmp_path: Path, form: str
) -> None:
    executors = tmp_path / "executors.yml"
    executors.write_text(
        "near:\n  site: site-a\n  partition: compute\n  max_workers_per_node: 1\n"
        "far:\n  site: site-b\n  partition: compute\n  max_workers_per_node: 1\n"
    )
    proc = pwrun("run", str(WORKFLOWS / "own_config.py"), form, "~/markers", "near", "far",
                 "-e", str(executors), "-i", str(lab.inventory), home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"pwrun: using your Config's retries=2; executors near, far from {executors}\n" in (
        proc.stderr
    )
    a, b = ({node.hostname for node in site.computes} for site in lab.sites)
    hosts = dict(line.split(" ran on ") for line in proc.stdout.splitlines())
    assert hosts.keys() == {"retried task", "near", "far"}, proc.stdout
    assert {hosts["retried task"], hosts["near"]} <= a and hosts["far"] in b
    # the first try made its marker on site-a (where the retry found it), the retry removed it
    assert lab.ssh("site-a", "ls -A ~/markers && rm -r ~/markers").stdout == ""
    assert_nothing_left(lab)
