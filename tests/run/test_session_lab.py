"""pwrun.session() in a real Jupyter kernel on a lab site: apps run in Slurm jobs there, and
after the block, or the kernel's shutdown when the block never ends, nothing is left (tunnel,
job, remote directory, interchange, ssh connection)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pwrun.lab import Lab
from tests.run.notebooks import kernel
from tests.run.test_run_lab import ONE_SITE, assert_nothing_left, processes_here

pytestmark = pytest.mark.lab

APP = """
    import pwrun
    from parsl import python_app

    @python_app(executors=["map"])
    def where():
        import os, socket
        return f"{socket.gethostname()} {os.environ.get('SLURM_JOB_ID')}"
"""


def test_a_notebook_runs_apps_on_a_lab_site_and_leaves_nothing(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PWRUN_HOME", str(tmp_path / "state"))
    with kernel(tmp_path) as nb:
        nb.run(APP)
        host, job = nb.run(f"""
            with pwrun.session({str(ONE_SITE)!r}, {str(lab.inventory)!r}):
                print(where().result())
        """).split()
        assert host.startswith("site-a-c") and job.isdigit(), (host, job)
        assert_nothing_left(lab)

        executors = {"map": {"site": "site-b", "partition": "compute", "max_workers_per_node": 1}}
        host, job = nb.run(f"""
            left_open = pwrun.session({executors!r}, inventory={str(lab.inventory)!r})
            left_open.__enter__()
            print(where().result())
        """).split()
        assert host.startswith("site-b-c") and job.isdigit(), (host, job)
        assert processes_here("-R 127.0.0.1:"), "the open session has no tunnel"
    assert_nothing_left(lab)  # the kernel's shutdown tore the open session down
