"""Tunnel supervision without a login node (tests/fakes/ssh, as in test_tunnel.py): a tunnel whose
ssh dies is re-opened on the same port and carries traffic again; a site whose tunnel cannot be
re-opened is declared lost once, after the configured number of failures."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from pathlib import Path

from pwrun.errors import InfrastructureError
from pwrun.process import wait_until
from pwrun.runstate import ExecutorRecord, RunRecord
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


def test_end_remote_ends_only_its_own_relay(echo_port: int) -> None:
    mine, other = (tunnel.open_tunnel(unique(), LOGIN, echo_port, INTERNAL) for _ in range(2))
    LOGIN.run(tunnel.end_remote(mine.name))
    assert not mine.alive() and other.alive()  # the fake ssh is its relay
    assert roundtrip(other.remote_port) == b"ping"
