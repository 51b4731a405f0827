"""Tunnels without a login node: tests/fakes/ssh stands in for OpenSSH (the ssh seam), making the
`-R` forward with pwrun's relay and running the remote command (the relay) here. 127.0.0.2
plays the login node's internal address, where compute nodes connect."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pwrun.cluster import tunnels
from pwrun.errors import InfrastructureError
from pwrun.process import wait_until
from pwrun.transport import tunnel
from pwrun.transport.ssh import SSHTarget

FAKES = Path(__file__).resolve().parents[1] / "fakes"
LOGIN = SSHTarget("127.0.0.1")
INTERNAL = "127.0.0.2"


@pytest.fixture(autouse=True)
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PWRUN_HOME", str(tmp_path / "state"))
    yield
    for opened in tunnel.recorded():
        opened.close()


@pytest.fixture
def echo_port() -> Iterator[int]:
    """An echo server on workstation loopback (what the interchange's port is to a tunnel)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def roundtrip(port: int) -> bytes:
    with socket.create_connection((INTERNAL, port), timeout=5) as conn:
        conn.sendall(b"ping")
        return conn.recv(4)


def refused(port: int) -> bool:
    try:
        socket.create_connection((INTERNAL, port), timeout=1).close()
    except OSError:
        return True
    return False


def test_a_tunnel_carries_traffic_and_closes_with_both_ends(echo_port: int) -> None:
    opened = tunnel.open_tunnel("t", LOGIN, echo_port, INTERNAL)
    assert roundtrip(opened.remote_port) == b"ping"
    assert tunnel.load("t") == opened and opened.alive()
    assert tunnel.recorded() == [opened]
    opened.close()
    assert not opened.alive() and tunnel.load("t") is None
    assert wait_until(lambda: refused(opened.remote_port), 5), "the relay outlived its tunnel"


def test_a_taken_remote_port_is_retried(echo_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server((INTERNAL, 0)) as taken:
        busy = taken.getsockname()[1]
        with socket.socket() as probe:
            probe.bind((INTERNAL, 0))
            free = probe.getsockname()[1]
        ports = iter([busy, free])
        monkeypatch.setattr(tunnel.random, "randint", lambda low, high: next(ports))
        opened = tunnel.open_tunnel("t", LOGIN, echo_port, INTERNAL)
    assert opened.remote_port == free and roundtrip(free) == b"ping"


def test_ensure_keeps_a_healthy_matching_tunnel_and_replaces_a_dead_one(echo_port: int) -> None:
    first, changed = tunnel.ensure("t", LOGIN, echo_port, INTERNAL)
    assert changed
    assert tunnel.ensure("t", LOGIN, echo_port, INTERNAL) == (first, False)
    first.process.stop()
    second, changed = tunnel.ensure("t", LOGIN, echo_port, INTERNAL)
    assert changed and second.process != first.process and roundtrip(second.remote_port) == b"ping"


def test_an_address_the_login_node_lacks_is_named(echo_port: int) -> None:
    with pytest.raises(InfrastructureError, match=r"192\.0\.2\.1 is not an address of the login"):
        tunnel.open_tunnel("t", LOGIN, echo_port, "192.0.2.1")
    assert tunnel.load("t") is None


def test_the_tunnel_roles_back_end_in_check_mode_and_for_real(echo_port: int) -> None:
    facts, changed = tunnels.present("role", LOGIN, echo_port, INTERNAL, check=True)
    assert changed and tunnel.load("role") is None  # check mode opens nothing
    facts, changed = tunnels.present("role", LOGIN, echo_port, INTERNAL)
    assert changed and roundtrip(facts["remote_port"]) == b"ping"
    again, changed = tunnels.present("role", LOGIN, 0, INTERNAL, check=True)
    assert (again, changed) == (facts, False)
    assert tunnels.remove("role", check=True) and tunnel.load("role") is not None
    assert tunnels.remove("role") and tunnel.load("role") is None
    assert not tunnels.remove("role")
