"""Records pwrun keeps (runs, tunnels) survive crashes, and name the processes they track."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pwrun import state
from pwrun.process import ProcessRef
from pwrun.runstate import RECORD, ExecutorRecord, RunRecord, RunStatus, all_runs
from pwrun.transport import tunnel
from pwrun.transport.ssh import SSHTarget


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PWRUN_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def test_home_is_private_and_tightened(home: Path) -> None:
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    assert state.home() == home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.runs_dir().stat().st_mode) == 0o700


def test_write_atomic_replaces_whole_and_private(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old")
    state.write_atomic(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no partial file left


def test_write_atomic_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        state.write_atomic(target, 42)  # type: ignore[arg-type]  # not text: write fails
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_process_identity_needs_the_start_time() -> None:
    me = ProcessRef.current()
    assert me.alive()
    assert not ProcessRef(me.pid, me.started + 1).alive()  # same pid, another process
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    ref = ProcessRef.of(child.pid)
    child.wait()
    assert not ref.alive()


def test_stop_ends_a_process_that_ignores_sigterm() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(15, signal.SIG_IGN); "
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout and child.stdout.readline().strip() == "ready"
    ref = ProcessRef.of(child.pid)
    started = time.monotonic()
    ref.stop(grace=0.3)
    child.wait(timeout=5)
    assert not ref.alive() and time.monotonic() - started < 3


def make_run(home: Path) -> RunRecord:
    record = RunRecord(state.new_run_dir(), "wf.py")
    target = SSHTarget("10.0.0.2", "pwlab", options=("ConnectTimeout=5",))
    record.add(ExecutorRecord("map", "site-a", target, "/home/pwlab/r/x/map", "x-map"))
    return record


def test_run_record_round_trip(home: Path) -> None:
    record = make_run(home)
    record.set_status(RunStatus.WORKFLOW)
    loaded = RunRecord.load(record.directory)
    assert loaded == record
    assert loaded is not None and loaded.status is RunStatus.WORKFLOW
    assert loaded.process_alive()


def test_a_reused_pid_is_not_the_run(home: Path) -> None:
    record = make_run(home)
    record.process = ProcessRef(record.process.pid, record.process.started - 1)
    assert not record.process_alive()


@pytest.mark.parametrize("content", ["", '{"directory": "/x", "work', "[]", '{"directory": 1}'])
def test_unreadable_run_records_are_skipped_with_a_warning(
    home: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = make_run(home)
    bad = state.new_run_dir()
    (bad / RECORD).write_text(content)
    assert [r.id for r in all_runs()] == [good.id]
    assert f"{bad / RECORD}" in capsys.readouterr().err.replace("\n", "")


def test_status_and_down_go_on_past_a_truncated_record(home: Path, tmp_path: Path) -> None:
    run_dir = state.new_run_dir()
    (run_dir / RECORD).write_text('{"directory": "')
    env = {**os.environ, "PWRUN_HOME": str(home)}
    for command in ("status", "down"):
        proc = subprocess.run(
            [sys.executable, "-m", "pwrun.cli", command],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "unreadable" in proc.stderr and "skipped" in proc.stderr


def test_unreadable_tunnel_records_are_skipped(home: Path) -> None:
    tunnel.record_path("broken").write_text("{")
    tunnel.record_path("old").write_text(json.dumps({"name": "old", "pid": 1}))
    assert tunnel.load("broken") is None
    assert tunnel.load("old") is None
    assert tunnel.recorded() == []


def test_teardown_quotes_remote_paths_and_cancels_by_directory(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ssh seam is mocked: what teardown asks the login node to run."""
    commands: list[str] = []

    def run(self: SSHTarget, command: str, **kwargs: object) -> subprocess.CompletedProcess:
        commands.append(command)
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(SSHTarget, "run", run)
    monkeypatch.setattr(SSHTarget, "close", lambda self: None)
    record = make_run(home)
    assert record.teardown() == []
    (command,) = commands
    assert "$(dirname" not in command
    assert "rm -rf -- /home/pwlab/r/x/map /home/pwlab/r/x/files;" in command  # and the store
    assert "rmdir -- /home/pwlab/r/x " in command
    assert "index($2, d) == 1" in command and "scancel" in command
    assert RunRecord.load(record.directory).status is RunStatus.DOWN  # type: ignore[union-attr]


def test_a_truncated_lab_record_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "lab.json").write_text('{"directory": "/tmp/x", "si')
    proc = subprocess.run(
        [sys.executable, "-m", "pwrun.cli", "lab", "down", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "unreadable lab record" in proc.stderr and "pwrun lab down --all" in proc.stderr


def test_down_leaves_a_live_run_alone(home: Path, tmp_path: Path) -> None:
    record = make_run(home)  # made by this (live) test process
    proc = subprocess.run(
        [sys.executable, "-m", "pwrun.cli", "down", record.id],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={**os.environ, "PWRUN_HOME": str(home)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"is still running (pid {os.getpid()}): left alone" in proc.stderr.replace("\n", "")
    assert RunRecord.load(record.directory).status is RunStatus.STARTING  # type: ignore[union-attr]


def test_status_marks_an_unreachable_site_and_answers_in_bounded_time(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ssh seam is mocked: site 10.0.0.3 never answers; the other lists a job."""
    from pwrun.errors import InfrastructureError
    from pwrun.runstate import statuses

    def run(self: SSHTarget, command: str, timeout: float = 60, **kw: object):
        if self.host == "10.0.0.3":
            time.sleep(0.2)
            raise InfrastructureError(f"{self.host}: command timed out after {timeout:g}s")
        return subprocess.CompletedProcess([], 0, "4242\n", "")

    monkeypatch.setattr(SSHTarget, "run", run)
    record = make_run(home)
    record.add(ExecutorRecord("gpu", "site-b", SSHTarget("10.0.0.3"), "/r/x/gpu", "x-gpu"))
    started = time.monotonic()
    rows = {row.executor: row for row in statuses(ssh_timeout=1)}
    assert time.monotonic() - started < 1
    assert rows["map"].blocks == "4242" and rows["gpu"].blocks == "unreachable"
    assert rows["map"].tunnel == "closed" and rows["map"].state == "starting"


def test_leftover_checks_see_this_sessions_processes_only() -> None:
    from tests.conftest import started_here

    ours = subprocess.Popen(["sleep", "30"])
    theirs = subprocess.Popen(
        ["sleep", "30"], env={k: v for k, v in os.environ.items() if k != "PWRUN_TEST_SESSION"}
    )
    try:
        assert started_here(ours.pid) and not started_here(theirs.pid)
    finally:
        for proc in (ours, theirs):
            proc.kill()
            proc.wait()
