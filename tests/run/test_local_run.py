"""`pwrun run` on the embedded local site, and bad input caught before anything is made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pwrun.process import wait_until
from tests.run.invoke import WORKFLOWS, pwrun, pwrun_env

ROOT = Path(__file__).resolve().parents[2]
OWN_CONFIG = WORKFLOWS / "own_config.py"


def test_quick_start_runs_hello_on_the_local_site(tmp_path: Path) -> None:
    proc = pwrun("run", str(ROOT / "examples/hello.py"), home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == [f"task {i}" for i in range(4)]
    assert lines[-1].startswith("workflow ran from ")


def local_label(tmp_path: Path, label: str = "here") -> Path:
    """An executors file of one label on the local site."""
    executors = tmp_path / "executors.yml"
    executors.write_text(f"{label}:\n  site: local\n  max_workers_per_node: 1\n")
    return executors


def test_unknown_label_in_an_app_says_which_labels_exist(tmp_path: Path) -> None:
    executors = local_label(tmp_path)
    proc = pwrun("run", str(WORKFLOWS / "slow.py"), "nope", "-e", str(executors), home=tmp_path)
    assert proc.returncode == 1
    assert "an app asked for executor 'nope', which this run does not have" in proc.stderr
    assert "(its labels: here)" in proc.stderr


def test_a_label_the_workflow_names_is_checked_before_anything_starts(tmp_path: Path) -> None:
    executors = local_label(tmp_path)
    workflow = WORKFLOWS / "bad_label.py"
    proc = pwrun("run", str(workflow), "-e", str(executors), home=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: {executors} has no label 'nope', which {workflow}:9 uses (its labels: here)\n"
    )
    assert not (tmp_path / "state" / "runs").exists()  # nothing made
    proc = pwrun("run", str(workflow), home=tmp_path)
    assert "the embedded local site (no -e EXECUTORS) has no label 'nope'" in proc.stderr


def test_a_plain_parsl_workflow_runs_with_python_on_its_own_config(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(OWN_CONFIG), "with", str(tmp_path / "markers"), "local"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "local ran on " in proc.stdout and not any((tmp_path / "markers").iterdir())


@pytest.mark.parametrize("form", ["load", "with", "twice"])
def test_a_plain_parsl_workflow_runs_unchanged_with_its_retries(tmp_path: Path, form: str) -> None:
    """Its first task succeeds only because its Config's retries=2 is kept."""
    executors = local_label(tmp_path, "local")
    markers = tmp_path / "markers"
    proc = pwrun("run", str(OWN_CONFIG), form, str(markers), "local", "-e", str(executors),
                 home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("retried task ran on ") == (2 if form == "twice" else 1)
    assert not any(markers.iterdir())  # each first try made its marker, each retry removed it
    summary = f"pwrun: using your Config's retries=2; executors local from {executors}\n"
    assert proc.stderr.count(summary) == proc.stdout.count("retried")
    assert "Traceback" not in proc.stderr


def test_a_label_of_the_workflows_config_that_the_file_lacks_is_an_error(tmp_path: Path) -> None:
    executors = local_label(tmp_path, "local")
    proc = pwrun("run", str(OWN_CONFIG), "load", str(tmp_path), "local", "gpu",
                 "-e", str(executors), home=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    error = f"error: {executors} has no label 'gpu', which the workflow's Config uses "
    assert error + "(its labels: local)\n" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_cluster_that_is_off_is_refused_before_anything_starts(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n    sleepy:\n      ansible_host: 127.0.0.1\n      pwrun_status: 'off'\n"
    )
    executors = tmp_path / "executors.yml"
    executors.write_text("map:\n  site: sleepy\n")
    proc = pwrun("run", str(ROOT / "examples/hello.py"), "-e", str(executors), "-i",
                 str(inventory), home=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert "map.site: cluster 'sleepy' is off; start it first" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state" / "runs").exists()  # nothing made


def test_a_local_labels_env_reaches_its_apps(tmp_path: Path) -> None:
    executors = tmp_path / "executors.yml"
    executors.write_text("here: {site: local, env: {FOO: bar}, max_workers_per_node: 1}\n")
    proc = pwrun("run", str(WORKFLOWS / "env_var.py"), "here", "FOO", "-e", str(executors),
                 home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == "bar"


def test_a_cluster_field_on_the_local_site_is_refused(tmp_path: Path) -> None:
    executors = tmp_path / "x.yml"
    executors.write_text("gpu:\n  site: local\n  partition: x\n")
    proc = pwrun("run", str(ROOT / "examples/hello.py"), "-e", str(executors), home=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: {executors}: gpu.partition: not allowed on site local (a cluster field)\n"
    )
    assert not (tmp_path / "state" / "runs").exists()  # nothing made


def test_bad_inventory_file_names_it(tmp_path: Path) -> None:
    executors = tmp_path / "executors.yml"
    executors.write_text("map:\n  site: a\n")
    proc = pwrun("run", str(ROOT / "examples/hello.py"), "-e", str(executors), "-i",
                 str(tmp_path / "missing.yml"), home=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert f"{tmp_path / 'missing.yml'}: inventory not found" in proc.stderr.replace("\n", "")


def test_a_workflow_need_not_call_parsl_load(tmp_path: Path) -> None:
    proc = pwrun("run", str(WORKFLOWS / "no_load.py"), home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "20"


def test_workflow_arguments_and_exit_code_pass_through(tmp_path: Path) -> None:
    script = tmp_path / "exits.py"
    script.write_text("import sys\nprint(sys.argv[1:])\nsys.exit(7)\n")
    proc = pwrun("run", str(script), "a", "b", home=tmp_path)
    assert proc.returncode == 7
    assert proc.stdout.strip() == "['a', 'b']"


LEFT_LOADED = """
import parsl, pwrun
from parsl import python_app

@python_app
def one():
    return 1

parsl.load(pwrun.config())
print(one().result())
"""


def test_a_script_run_with_plain_python_leaves_no_process_behind(tmp_path: Path) -> None:
    """Outside `pwrun run`, pwrun.config() is the local site; a script that never cleans its
    DFK up leaves no interchange or worker pool running once it exits."""
    proc = subprocess.run(
        [sys.executable, "-c", LEFT_LOADED], capture_output=True, text=True, timeout=300,
        cwd=tmp_path, env=pwrun_env(tmp_path),
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "1\n"), proc.stderr[-3000:]
    assert "still running" not in proc.stderr  # Parsl's warning of a DFK left loaded

    assert wait_until(lambda: not processes_of(tmp_path), 10), processes_of(tmp_path)


def processes_of(directory: Path) -> list[str]:
    """Processes working in `directory` (the interchange) or naming it (the worker pool)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            command = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if cwd == str(directory) or str(directory) in command:
            found.append(f"{pid} {command}")
    return found
