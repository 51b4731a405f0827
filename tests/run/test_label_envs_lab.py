"""Per-label envs on a lab site: two labels with different packages get different envs (from
wheels made here, no package index), and an env the user brings with another Parsl fails the
run before any job is submitted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import parsl
import pytest

from pwrun import state
from pwrun.lab import Lab
from tests.run.test_run_lab import WORKFLOWS, assert_nothing_left, pwrun
from tests.run.wheels import write_wheel

pytestmark = pytest.mark.lab
ENVS = "/home/pwlab/.pwrun/envs/parsl-"


def run_label_envs(lab: Lab, home: Path, executors: Path) -> tuple[dict, Path]:
    """`pwrun run` of label_envs.py: what each label's app saw, and the run's directory."""
    proc = pwrun("run", str(WORKFLOWS / "label_envs.py"), "-e", str(executors),
                 "-i", str(lab.inventory), home=home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = max((home / "state" / "runs").iterdir())
    return json.loads(proc.stdout.splitlines()[-1]), run_dir


def test_two_labels_on_one_site_see_their_own_packages(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "wheels"
    write_wheel(wheels, "pwrun-probe-a", "1.0", "VALUE = 'a 1.0'\n")
    write_wheel(wheels, "pwrun-probe-b", "2.0", "VALUE = 'b 2.0'\n")
    # the workstation's pip finds them here; the site gets them in the wheelhouse
    monkeypatch.setenv("PIP_FIND_LINKS", f"{wheels} {os.environ.get('PIP_FIND_LINKS', '')}")
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "two.txt").write_text("# label two's\npwrun-probe-b==2.0  # pinned\n")
    executors = tmp_path / "executors.yml"
    executors.write_text(
        "one:\n  site: site-a\n  max_workers_per_node: 1\n  packages: [pwrun-probe-a==1.0]\n"
        "two:\n  site: site-a\n  max_workers_per_node: 1\n  requirements: reqs/two.txt\n"
    )
    seen, _ = run_label_envs(lab, tmp_path, executors)
    one, two = seen["one"], seen["two"]
    assert one["found"] == {"pwrun_probe_a": "a 1.0"}, seen
    assert two["found"] == {"pwrun_probe_b": "b 2.0"}, seen
    assert one["prefix"] != two["prefix"], seen
    assert one["prefix"].startswith(ENVS) and two["prefix"].startswith(ENVS), seen
    assert one["parsl"] == two["parsl"] == parsl.__version__

    again, warm = run_label_envs(lab, tmp_path, executors)  # warm: the recorded state holds
    assert again == seen
    assert not (warm / state.ANSIBLE_DIR).exists(), "ansible-runner ran for envs that hold"
    assert_nothing_left(lab)


def test_a_package_missing_from_the_wheelhouse_is_named(lab: Lab, tmp_path: Path) -> None:
    executors = tmp_path / "executors.yml"
    executors.write_text(
        "one:\n  site: site-a\n  packages: [pwrun-probe-nowhere==9.9]\ntwo:\n  site: site-a\n"
    )
    proc = pwrun("run", str(WORKFLOWS / "label_envs.py"), "-e", str(executors),
                 "-i", str(lab.inventory), home=tmp_path)  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "env of label one" in proc.stderr and "pwrun-probe-nowhere==9.9" in proc.stderr
    assert "wheelhouse" in proc.stderr and "Traceback" not in proc.stderr
    assert_nothing_left(lab)


def test_own_env_with_another_parsl_fails_before_any_job(lab: Lab, tmp_path: Path) -> None:
    """A venv on the site whose parsl is 2024.1.1, brought by its python and by its activate."""
    env = "/home/pwlab/own-env"
    made = lab.ssh(
        "site-a",
        f"rm -rf {env} && python3 -m venv --without-pip {env} && "
        f"lib=$({env}/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"
        ' && mkdir "$lib/parsl" && echo "__version__ = \'2024.1.1\'" > "$lib/parsl/__init__.py"',
    )
    assert made.returncode == 0, made.stderr
    site = lab.site("site-a")
    jobs = "wc -l < /var/log/slurm/jobcomp.log 2>/dev/null || echo 0"
    finished_before = site.login.exec(jobs).stdout
    executors = tmp_path / "executors.yml"
    executors.write_text(
        "mine:\n  site: site-a\n  python: ~/own-env/bin/python\n"
        "also:\n  site: site-a\n  activate: ~/own-env/bin/activate\n"
        "fine:\n  site: site-a\n"
    )
    proc = pwrun("run", str(WORKFLOWS.parent.parent.parent / "examples/hello.py"),
                 "-e", str(executors), "-i", str(lab.inventory), home=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    version = parsl.__version__
    for part in (
        f"{executors}: mine.python: ~/own-env/bin/python on site-a: its Parsl is 2024.1.1, "
        f"the workstation's {version}: run `pip install parsl=={version}` in it",
        "also.activate: ~/own-env/bin/activate on site-a: its Parsl is 2024.1.1",
    ):
        assert part in line, line
    assert "fine" not in line and "Traceback" not in proc.stderr
    # no job was submitted: none queued, none finished (a cancelled job is logged there too)
    assert lab.ssh("site-a", "squeue -h -u pwlab").stdout.strip() == ""
    assert site.login.exec(jobs).stdout == finished_before
    record = json.loads(next((tmp_path / "state" / "runs").glob("*/run.json")).read_text())
    assert record["status"] == "down" and not record.get("interchanges"), record
    assert_nothing_left(lab)
    lab.ssh("site-a", f"rm -rf {env}")
