"""ssh targets and the tunnel relay: nothing from an inventory becomes an ssh option or a
shell word, and the relay says why it cannot listen."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pwrun.cluster.hostkeys import known_hosts_file_from_args
from pwrun.errors import PwrunError
from pwrun.transport import relay
from pwrun.transport.ssh import SSHTarget, expand_home, shell_path, ssh_options


@pytest.mark.parametrize(
    ("host", "user"),
    [
        ("-oProxyCommand=touch /tmp/x", None),
        ("10.0.0.1 -oProxyCommand=x", None),
        ("login\nProxyCommand x", None),
        ("10.0.0.1", "-oProxyCommand=x"),
        ("10.0.0.1", "pw{{ lookup('pipe', 'id') }}"),
        ("10.0.0.1", "a b"),
    ],
)
def test_hostile_hosts_and_users_are_refused(host: str, user: str | None) -> None:
    with pytest.raises(PwrunError, match=r"ssh target: .* is not allowed here"):
        SSHTarget.from_ansible(host, user)


def test_destination_comes_after_double_dash(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("PWRUN_HOME", str(tmp_path))
    argv = SSHTarget("login.example.org", "alice", 2222).argv("-N")
    assert argv[-2:] == ["--", "alice@login.example.org"]
    assert argv.index("-N") < argv.index("--")
    assert "StrictHostKeyChecking=yes" in argv and "BatchMode=yes" in argv


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("-o UserKnownHostsFile=/k/h -o ConnectTimeout=5", "/k/h"),
        ("-oUserKnownHostsFile=/k/h", "/k/h"),
        ("-o 'UserKnownHostsFile /k/h /other'", "/k/h"),
        ("-o StrictHostKeyChecking=no", None),
        ("", None),
    ],
)
def test_one_parser_for_ssh_options(args: str, expected: str | None) -> None:
    """The tunnel's target and the ssh_access role read ssh arguments the same way."""
    target = SSHTarget.from_ansible("10.0.0.1", ssh_args=args)
    assert known_hosts_file_from_args(args) == expected
    assert (target.known_hosts or "").split()[:1] == ([expected] if expected else [])
    assert not any(o.lower().startswith("stricthostkeychecking") for o in target.options)
    assert ("ConnectTimeout", "5") in ssh_options(args) or "ConnectTimeout" not in args


def test_remote_writes_quote_every_path(tmp_path: Path, monkeypatch: Any) -> None:
    """The ssh seam is mocked: the command a remote write runs, and its stdin."""
    monkeypatch.setenv("PWRUN_HOME", str(tmp_path))
    calls: list[tuple[list[str], dict[str, Any]]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        calls.append((argv, kwargs))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    SSHTarget("10.0.0.1", "pwlab").write_file("/home/pw lab/$(x)/certs/client.key_secret", "KEY")
    argv, kwargs = calls[0]
    command = argv[-1]
    assert "$(dirname" not in command
    assert "mkdir -p -- '/home/pw lab/$(x)/certs'" in command
    assert "cat > '/home/pw lab/$(x)/certs/client.key_secret'" in command
    assert kwargs["input"] == "KEY" and "KEY" not in " ".join(argv)  # secrets via stdin only
    assert kwargs["start_new_session"] is True  # a terminal's Ctrl-C does not cut it short


def run_relay(address: str, port: int) -> str:
    proc = subprocess.run(
        [sys.executable, relay.__file__, address, str(port), str(port)],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert proc.returncode == 1
    return proc.stdout


def test_relay_tells_a_taken_port_from_a_foreign_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert "address in use" in run_relay("127.0.0.1", port)
    # 192.0.2.1 (TEST-NET-1) is on no interface here: binding it fails at once, sends nothing
    assert "address not available" in run_relay("192.0.2.1", 20000)


@pytest.mark.parametrize(
    ("path", "absolute", "word"),
    [
        ("~", "/home/u", "'~'"),
        ("~/.pwrun/envs", "/home/u/.pwrun/envs", '"$HOME"/.pwrun/envs'),
        ("~/a b", "/home/u/a b", "\"$HOME\"/'a b'"),
        ("/scratch/x", "/scratch/x", "/scratch/x"),
        ("~other/x", "~other/x", "'~other/x'"),
    ],
)
def test_site_paths_with_a_tilde(path: str, absolute: str, word: str) -> None:
    assert expand_home(path, "/home/u") == absolute
    assert shell_path(path) == word
