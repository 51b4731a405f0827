"""Tunnel supervision without a login node (tests/fakes/ssh, as in test_tunnel.py): a tunnel whose
ssh dies is re-opened on the same port and carries traffic again; a site whose tunnel cannot be
re-opened is declared lost once, after the configured number of failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from pwrun.errors import InfrastructureError
from pwrun.process import running, wait_until
from pwrun.runstate import ExecutorRecord, RunRecord, RunStatus
from pwrun.transport import tunnel
from pwrun.transport.supervision import Supervisor, TunnelState
from tests.unit.test_tunnel import INTERNAL, LOGIN, echo_port, fake_ssh, roundtrip

__all__ = ["echo_port", "fake_ssh"]  # fixtures


def unique() -> str:
    """A tunnel name no other test session on this machine uses (end_remote pkills by name)."""
    return f"t{uuid.uuid4().hex[:12]}"


def test_a_killed_tunnel_is_reopened_on_its_port_and_recorded(
    echo_port: int, tmp_path: Path
) -> None:
    name = unique()
    opened = tunnel.open_tunnel(name, LOGIN, echo_port, INTERNAL)
    record = RunRecord(tmp_path, "flow.py")
    record.add(ExecutorRecord("map", "site-a", LOGIN, "/r/map", name))
    lost: list[str] = []
    supervisor = Supervisor(record.set_tunnel, lambda site, why: lost.append(site), interval=0.05)
    supervisor.watch("map", "site-a", opened, LOGIN)
    supervisor.start()
    try:
        for kill in (1, 2, 3):
            current = supervisor.watched[0].tunnel
            os.kill(current.process.pid, signal.SIGKILL)
            assert wait_until(lambda n=kill: supervisor.watched[0].reconnects == n, 15), kill
            again = supervisor.watched[0].tunnel
            assert again.remote_port == opened.remote_port and again.process != current.process
            assert roundtrip(again.remote_port) == b"ping"
    finally:
        supervisor.stop()
    saved = RunRecord.load(tmp_path)
    assert saved is not None and lost == []
    assert (saved.executors[0].tunnel_state, saved.executors[0].reconnects) == ("open", 3)
    assert tunnel.load(name) == supervisor.watched[0].tunnel  # what teardown will close


def test_a_site_that_cannot_be_reached_is_lost_once(echo_port: int) -> None:
    opened = [tunnel.open_tunnel(unique(), LOGIN, echo_port, INTERNAL) for _ in range(2)]
    attempts: list[str] = []
    lost: list[tuple[str, str]] = []
    changes: list[tuple[str, TunnelState, int]] = []
    every_loss = threading.Event()

    def unreachable(old: tunnel.Tunnel, target: object) -> tunnel.Tunnel:
        attempts.append(old.name)
        raise InfrastructureError("site-a: ssh failed: connect to host site-a port 22: timed out")

    def on_lost(site: str, why: str) -> None:
        lost.append((site, why))
        every_loss.set()

    supervisor = Supervisor(
        lambda *change: changes.append(change), on_lost, reopen=unreachable,
        interval=0.05, window=30, attempts=3, backoff=0.01,
    )  # fmt: skip
    for label, each in zip(("map", "reduce"), opened, strict=True):
        supervisor.watch(label, "site-a", each, LOGIN)
    supervisor.start()
    try:
        opened[0].process.stop()
        assert every_loss.wait(15)
        opened[1].process.stop()  # the same site: already lost, not re-opened nor lost again
        wait_until(lambda: False, 0.5)
    finally:
        supervisor.stop()
    assert attempts == [opened[0].name] * 3
    assert [site for site, _ in lost] == ["site-a"]
    assert "3 re-opens of its tunnel failed within 30s" in lost[0][1] and "timed out" in lost[0][1]
    assert changes == [("map", TunnelState.RECONNECTING, 0), ("map", TunnelState.LOST, 0)]
    assert supervisor.lost == {"site-a": lost[0][1]}


def test_failures_older_than_the_window_do_not_count(echo_port: int) -> None:
    name = unique()
    opened = tunnel.open_tunnel(name, LOGIN, echo_port, INTERNAL)
    tries = iter([True, True, False, True, False])  # raise, raise, open, raise, open

    def flaky(old: tunnel.Tunnel, target: object) -> tunnel.Tunnel:
        if next(tries):
            raise InfrastructureError("site-a: ssh failed")
        return tunnel.reopen(old, LOGIN)

    lost: list[str] = []
    supervisor = Supervisor(
        lambda *change: None, lambda site, why: lost.append(site), reopen=flaky,
        interval=0.05, window=0.3, attempts=2, backoff=0.4,
    )  # fmt: skip
    supervisor.watch("map", "site-a", opened, LOGIN)
    supervisor.start()
    try:
        opened.process.stop()
        assert wait_until(lambda: supervisor.watched[0].reconnects == 1, 15)
        supervisor.watched[0].tunnel.process.stop()
        assert wait_until(lambda: supervisor.watched[0].reconnects == 2, 15)
    finally:
        supervisor.stop()
    assert lost == []
    assert roundtrip(supervisor.watched[0].tunnel.remote_port) == b"ping"


def test_a_reopen_that_fails_while_the_run_ends_loses_no_site(echo_port: int) -> None:
    """Teardown has begun (stop) while a re-open waits on ssh's timeout: its failure is the
    run's end, not a lost site (which would stop a run that is already ending)."""
    opened = tunnel.open_tunnel(unique(), LOGIN, echo_port, INTERNAL)
    reopening, stopping = threading.Event(), threading.Event()

    def slow_failure(old: tunnel.Tunnel, target: object) -> tunnel.Tunnel:
        reopening.set()
        stopping.wait(15)
        raise InfrastructureError("site-a: ssh failed: connect to host site-a port 22: timed out")

    lost: list[str] = []
    supervisor = Supervisor(lambda *change: None, lambda site, why: lost.append(site),
                            reopen=slow_failure, interval=0.05, attempts=1)  # fmt: skip
    supervisor.watch("map", "site-a", opened, LOGIN)
    supervisor.start()
    opened.process.stop()
    assert reopening.wait(15)
    ending = threading.Thread(target=supervisor.stop)
    ending.start()
    wait_until(lambda: supervisor._stop.is_set(), 5)
    stopping.set()
    ending.join(15)
    assert not ending.is_alive() and lost == [] and supervisor.lost == {}


def test_end_remote_ends_only_its_own_relay(echo_port: int) -> None:
    mine, other = (tunnel.open_tunnel(unique(), LOGIN, echo_port, INTERNAL) for _ in range(2))
    LOGIN.run(tunnel.end_remote(mine.name))
    assert not mine.alive() and other.alive()  # the fake ssh is its relay
    assert roundtrip(other.remote_port) == b"ping"


EXIT_TEARDOWN = """
import atexit, sys
from pathlib import Path
from pwrun.runstate import ExecutorRecord, RunRecord
from pwrun.transport import tunnel
from pwrun.transport.ssh import SSHTarget
from pwrun.transport.supervision import Supervisor

directory, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
login = SSHTarget("127.0.0.1")
opened = tunnel.open_tunnel(name, login, port, "127.0.0.2")
record = RunRecord(Path(directory), "flow.py")
record.add(ExecutorRecord("map", "site-a", login, directory + "/remote/map", name))
supervisor = Supervisor(record.set_tunnel, lambda site, why: None, interval=0.05)
supervisor.watch("map", "site-a", opened, login)
supervisor.start()

def close() -> None:  # what a session a notebook left open does at the kernel's shutdown
    supervisor.stop()
    print("problems:", record.teardown(), flush=True)

atexit.register(close)
print("open", opened.process.pid, flush=True)
"""


def test_a_run_left_open_is_torn_down_at_interpreter_exit(echo_port: int, tmp_path: Path) -> None:
    """Interpreter exit waits for no watching thread before the atexit teardown, and teardown's
    per-site threads still start there (concurrent.futures refuses work at that point)."""
    name = unique()
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_TEARDOWN, str(tmp_path), name, str(echo_port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    opened, problems = proc.stdout.splitlines()
    assert problems == "problems: []", proc.stderr
    pid = int(opened.split()[1])
    assert wait_until(lambda: not running(pid), 5), "the tunnel's ssh outlived the interpreter"
    assert tunnel.load(name) is None
    record = RunRecord.load(tmp_path)
    assert record is not None and record.status is RunStatus.DOWN
