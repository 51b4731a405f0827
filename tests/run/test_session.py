"""pwrun.session() in a real Jupyter kernel on the embedded local site: apps run, no signal
handler is installed, and a block's end, a kernel interrupt and the kernel's shutdown each tear
the session down. The same on lab sites: tests/run/test_session_lab.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from nbclient.exceptions import CellExecutionError

import pwrun
from pwrun.errors import PwrunError
from pwrun.process import ProcessRef, wait_until
from tests.run.invoke import pwrun_env
from tests.run.notebooks import Kernel, kernel

SETUP = """
    import signal, socket, time, pwrun
    from parsl import python_app

    @python_app(executors=["here"])
    def nap(seconds, marker=None):
        import pathlib, socket, time
        if marker:
            pathlib.Path(marker).touch()
        time.sleep(seconds)
        return socket.gethostname()

    def handlers():
        return [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]

    kernels = handlers()
    EXECUTORS = {"here": {"site": "local", "max_workers_per_node": 1}}
"""


def runs(home: Path) -> list[dict]:
    """Every run.json under PWRUN_HOME, oldest first."""
    return [json.loads(p.read_text()) for p in sorted((home / "runs").glob("*/run.json"))]


def assert_down(run: dict) -> None:
    """The run is torn down and its interchange is gone."""
    assert run["status"] == "down", run
    assert run["workflow"] == "pwrun.session()"
    assert run["interchanges"], "the session's DFK recorded no interchange"
    for ref in run["interchanges"]:
        assert not ProcessRef(**ref).alive(), f"interchange {ref} left running"


def interrupt_once(nb: Kernel, marker: Path) -> threading.Thread:
    """Interrupt the kernel (Jupyter's stop button) once an app has touched `marker`."""

    def interrupt() -> None:
        if wait_until(marker.exists, 300):
            nb.interrupt()

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    return thread


def test_a_session_in_a_kernel_block_interrupt_and_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "state"
    monkeypatch.setenv("PWRUN_HOME", str(home))
    with kernel(tmp_path) as nb:
        nb.run(SETUP)
        inside = nb.run("""
            with pwrun.session(EXECUTORS) as dfk:
                print(nap(0).result() == socket.gethostname(), handlers() == kernels,
                      type(dfk).__name__, pwrun.config() is dfk.config)
            print("after", handlers() == kernels)
        """)
        assert inside.split() == ["True", "True", "DataFlowKernel", "True", "after", "True"]
        assert_down(runs(home)[0])

        marker = tmp_path / "started"
        thread = interrupt_once(nb, marker)
        with pytest.raises(CellExecutionError, match="KeyboardInterrupt"):
            nb.run(f"""
                with pwrun.session(EXECUTORS):
                    nap(600, {str(marker)!r}).result()
            """)
        thread.join()
        assert_down(runs(home)[1])
        assert nb.run("print(handlers() == kernels)").strip() == "True"

        opened = nb.run("""
            left_open = pwrun.session(EXECUTORS)
            print(left_open.__enter__().executors["here"].label, nap(0).result() != "")
        """)
        assert opened.split() == ["here", "True"]
        left = runs(home)[2]
        assert left["status"] == "workflow"
        assert all(ProcessRef(**ref).alive() for ref in left["interchanges"])
    assert_down(runs(home)[2])  # the kernel's shutdown ran its atexit teardown


def test_bad_executors_are_one_line_and_make_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PWRUN_HOME", str(tmp_path / "state"))
    with pytest.raises(PwrunError, match=r"^pwrun.session\(executors\): 'a b': label not allowed"):
        pwrun.session({"a b": {"site": "local"}})
    missing = tmp_path / "nope.yml"
    with pytest.raises(PwrunError, match=r"nope\.yml"):
        pwrun.session(missing)
    cluster = {"map": {"site": "site-a", "partition": "compute"}}
    with (
        pytest.raises(PwrunError, match=r"map\.site: clusters need an inventory"),
        pwrun.session(cluster),
    ):
        pass
    assert not list((tmp_path / "state").glob("runs/*")), "a refused session made a run"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert os.environ["PWRUN_HOME"] == str(tmp_path / "state")


FLAKY = """
import pathlib, sys, pwrun
from parsl import python_app

@python_app(executors=["here"])
def flaky(marker):
    import pathlib
    path = pathlib.Path(marker)
    tries = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(tries))
    if tries == 1:
        raise ValueError("first try fails")
    return tries

marker, retries = sys.argv[1], (None if sys.argv[2] == "-" else int(sys.argv[2]))
executors = {"here": {"site": "local", "max_workers_per_node": 1}, "pwrun": {"retries": 1}}
with pwrun.session(executors, retries=retries):
    try:
        print("result", flaky(marker).result())
    except ValueError as exc:
        print("failed", exc)
"""


@pytest.mark.parametrize(
    ("retries", "printed"), [("-", "result 2"), ("0", "failed first try fails")]
)
def test_a_session_retries_as_its_executors_say_unless_told(
    tmp_path: Path, retries: str, printed: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FLAKY, str(tmp_path / "tries"), retries],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env=pwrun_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == printed
    assert_down(runs(tmp_path / "state")[0])
