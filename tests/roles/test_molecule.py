"""The molecule scenarios: lab site up, converge, idempotence, verify from a Slurm job, down."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import require_lab
from tests.roles.conftest import PROJECT

pytestmark = pytest.mark.lab


@pytest.mark.timeout(900)
def test_molecule_default_scenario() -> None:
    require_lab()
    proc = subprocess.run(
        ["molecule", "test", "--scenario-name", "default"],
        cwd=PROJECT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "ANSI_COLORS_DISABLED": "1", "NO_COLOR": "1"},
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for step in ("converge", "idempotence", "verify", "destroy"):
        assert f"{step}: Executed: Successful" in output, f"{step} did not run:\n{output[-3000:]}"
