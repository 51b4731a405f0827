"""Timeouts and resume on the embedded local site (no root): timeouts count from the start of
execution and kill what the app started; a run cut short (kill -9 then `pwrun down`, Ctrl-C,
or a failed workflow) is resumed without running its checkpointed tasks again."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.run.invoke import WORKFLOWS, pwrun, pwrun_env

TASKS = 16


def one_worker(tmp_path: Path, extra: str = "") -> Path:
    executors = tmp_path / "executors.yml"
    executors.write_text(f"here:\n  site: local\n  max_workers_per_node: 1\n{extra}")
    return executors


def leftovers(mark: str) -> str:
    return subprocess.run(["pgrep", "-af", f"sleep 300[0-9]{mark}"], capture_output=True,
                          text=True).stdout  # fmt: skip


def test_timeouts_count_from_execution_and_kill_what_the_app_started(tmp_path: Path) -> None:
    mark = str(random.randrange(10**5, 10**6))
    executors = one_worker(tmp_path, "  task_timeout: 2\n")
    started = time.monotonic()
    proc = pwrun("run", str(WORKFLOWS / "timeouts.py"), mark, "here", "-e", str(executors),
                 home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines == [
        "AppTimeout: app stubborn on label here timed out after 2 s of execution: killed, "
        "with the processes it started",
        "AppTimeout: app sleepy on label here timed out after 1 s of execution: killed, with "
        "the processes it started",  # its own walltime wins over the label's task_timeout
        "queued tasks: [0, 0]",  # 1.5 s each, one after the other, under a 2 s limit
    ]
    assert time.monotonic() - started < 120
    assert leftovers(mark) == ""  # the shell's children too, even the one ignoring SIGTERM


def checkpointed(run_dir: Path) -> int:
    """Tasks in a run's checkpoint files."""
    count = 0
    for path in run_dir.glob("runinfo/*/checkpoint/tasks.pkl"):
        with path.open("rb") as file:
            while True:
                try:
                    pickle.load(file)
                except EOFError:
                    break
                count += 1
    return count


def runs(home: Path) -> list[Path]:
    return sorted((home / "state" / "runs").iterdir())


@pytest.mark.parametrize("ending", ["kill -9", "ctrl-c", "failure"])
def test_a_run_cut_short_is_resumed_without_its_finished_tasks(tmp_path: Path, ending: str) -> None:
    workflow = str(WORKFLOWS / "resumable.py")
    executors = str(one_worker(tmp_path))
    first = [workflow, str(TASKS), "first", "0.3"] + (["8"] if ending == "failure" else [])
    proc = subprocess.Popen(
        [sys.executable, "-m", "pwrun.cli", "run", *first, "-e", executors],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=pwrun_env(tmp_path), start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == f"done {TASKS // 2}":
                break
        if ending == "kill -9":
            os.killpg(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
            down = pwrun("down", home=tmp_path)
            assert down.returncode == 0 and "torn down" in down.stdout, down.stderr
        elif ending == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
            assert proc.wait(timeout=60) == 130
        else:
            assert proc.wait(timeout=60) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (killed,) = runs(tmp_path)
    done = checkpointed(killed)
    assert TASKS // 2 <= done < TASKS
    resumed = pwrun("run", workflow, str(TASKS), "second", "0.3", "--resume", "-e", executors,
                    home=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = sum(i * i for i in range(TASKS))
    assert resumed.stdout.splitlines()[-1] == f"sum {expected} ran {TASKS - done}"
    assert f"pwrun: resuming run {killed.name}" in resumed.stderr
    # a second resume starts from the resumed run, whose checkpoints hold every task
    again = pwrun("run", workflow, str(TASKS), "third", "0.3", "--resume", "-e", executors,
                  home=tmp_path)  # fmt: skip
    assert again.stdout.splitlines()[-1] == f"sum {expected} ran 0", again.stderr[-3000:]


def test_resume_from_names_a_run_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    workflow = str(WORKFLOWS / "resumable.py")
    proc = pwrun("run", workflow, "3", "a", "0", home=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (first,) = runs(tmp_path)
    proc = pwrun("run", workflow, "4", "b", "0", "--resume-from", first.name, home=tmp_path)
    assert proc.stdout.splitlines()[-1] == "sum 14 ran 1", proc.stderr[-3000:]
    refused = pwrun("run", workflow, "4", "c", "0", "--resume-from", "nope", home=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: --resume-from: no run 'nope'")
    other = tmp_path / "other.py"
    other.write_text("print('hi')\n")
    refused = pwrun("run", str(other), "--resume", home=tmp_path)
    assert refused.returncode == 2 and f"--resume: no earlier run of {other}" in refused.stderr
