"""OpenSSH, driven as a subprocess: host-key checking on, one reused connection per site."""

from __future__ import annotations

import hashlib
import posixpath
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pwrun import state, validation
from pwrun.errors import InfrastructureError, PwrunError

SSH_TIMEOUT = 60
# Every ssh and scp (tunnels, shared connections, teardown, status) gives up on a site that does
# not answer: no connection within CONNECT_TIMEOUT seconds, or no answer to ALIVE_COUNT
# keepalives sent every ALIVE_INTERVAL seconds (a cut network, a dead login node).
CONNECT_TIMEOUT = 5
ALIVE_INTERVAL = 3
ALIVE_COUNT = 3
LIVENESS = (
    f"ConnectTimeout={CONNECT_TIMEOUT}",
    f"ServerAliveInterval={ALIVE_INTERVAL}",
    f"ServerAliveCountMax={ALIVE_COUNT}",
)
NOT_CARRIED_OVER = ("stricthostkeychecking", "controlmaster", "controlpath")


def ssh_options(ssh_args: str) -> list[tuple[str, str]]:
    """The `-o key=value` / `-okey value` options in ssh arguments, as (key, value) pairs."""
    words = shlex.split(ssh_args or "")
    options = []
    for i, word in enumerate(words):
        if word == "-o" and i + 1 < len(words):
            option = words[i + 1]
        elif word.startswith("-o") and len(word) > 2:
            option = word[2:]
        else:
            continue
        key, _, value = option.strip().replace("=", " ", 1).partition(" ")
        options.append((key, value.strip()))
    return options


@dataclass(frozen=True)
class SSHTarget:
    """How to reach one login node with the system's ssh client."""

    host: str
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    config_file: str | None = None
    options: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        """Refuse what ssh would read as an option or a second word (`-oProxyCommand=...`)."""
        try:
            validation.address(self.host)
            if self.user is not None:
                validation.user_name(self.user)
        except ValueError as exc:
            raise PwrunError(f"ssh target: {exc}") from None

    @classmethod
    def from_ansible(
        cls,
        host: str,
        user: str | None = None,
        port: int | None = None,
        identity_file: str | None = None,
        ssh_args: str = "",
    ) -> SSHTarget:
        """The target Ansible reaches with these connection vars (`-o` options from ssh_args).

        pwrun keeps host-key checking on and manages its own shared connections, so
        StrictHostKeyChecking, ControlMaster and ControlPath options are not carried over.
        """
        options: list[str] = []
        known_hosts = None
        for key, value in ssh_options(ssh_args):
            if key.lower() == "userknownhostsfile":
                known_hosts = value
            elif key.lower() not in NOT_CARRIED_OVER:
                options.append(f"{key}={value}")
        return cls(
            host,
            user or None,
            port or None,
            identity_file or None,
            known_hosts,
            None,
            tuple(options),
        )

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def control_path(self) -> Path:
        """A short, per-target socket path (sun_path is limited to 108 bytes), in pwrun's
        private ssh directory."""
        digest = hashlib.sha1(repr(self).encode()).hexdigest()[:16]
        return state.private_dir("ssh") / digest

    def argv(self, *args: str, multiplex: bool = True) -> list[str]:
        """The ssh command line for this target, `args` placed before the destination."""
        shared = ["ControlMaster=no", "ControlPath=none"]
        if multiplex:
            shared = [
                "ControlMaster=auto",
                f"ControlPath={self.control_path}",
                "ControlPersist=120",
            ]
        return ["ssh", *self.flags("-p", *shared), *args, "--", self.destination]

    def copy_argv(self) -> list[str]:
        """scp with this target's options, through its shared connection (ControlMaster=no:
        it never becomes a master); one end written as `remote(path)`."""
        return ["scp", *self.flags("-P", "ControlMaster=no", f"ControlPath={self.control_path}")]

    def remote(self, path: str) -> str:
        """A path on the login node, as scp names it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{path}" if self.user else f"{host}:{path}"

    def flags(self, port_flag: str, *extra: str) -> list[str]:
        """The options of ssh (or scp: its `port_flag` differs), with `extra` `-o` options; the
        target's own options come first, so they win over pwrun's LIVENESS defaults."""
        argv = ["-F", self.config_file] if self.config_file else []
        argv += ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.identity_file:
            argv += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        if self.port:
            argv += [port_flag, str(self.port)]
        for option in (*self.options, *extra, *LIVENESS):
            argv += ["-o", option]
        return argv

    def run(
        self,
        command: str,
        input: str | None = None,
        timeout: float = SSH_TIMEOUT,
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        """Run a shell command on the login node over the shared connection."""
        try:
            proc = subprocess.run(
                [*self.argv(), command], input=input, capture_output=True, text=True,
                timeout=timeout, start_new_session=True,  # a terminal's Ctrl-C is pwrun's alone
                # never pwrun's own stdin: ssh makes it non-blocking and, when killed at a
                # timeout, leaves it so for every later child (Ansible refuses such a stdin)
                stdin=subprocess.DEVNULL if input is None else None,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise InfrastructureError(
                f"{self.host}: command timed out after {timeout:g}s"
            ) from None
        if check and proc.returncode == 255:
            raise InfrastructureError(f"{self.host}: ssh failed: {last_line(proc.stderr)}")
        if check and proc.returncode != 0:
            raise InfrastructureError(
                f"{self.host}: `{command}` exited {proc.returncode}: {last_line(proc.stderr)}"
            )
        return proc

    def write_file(self, remote_path: str, content: str, mode: str = "600") -> None:
        """Write `content` to a file on the login node, never through its command line."""
        quoted = shlex.quote(remote_path)
        parent = shlex.quote(posixpath.dirname(remote_path))
        self.run(
            f"umask 077 && mkdir -p -- {parent} && cat > {quoted} && chmod {mode} -- {quoted}",
            input=content,
        )

    def close(self) -> None:
        """End the shared connection, if one is open."""
        if self.control_path.exists():
            subprocess.run(
                self.argv("-O", "exit"),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
                start_new_session=True,
            )


def expand_home(path: str, home: str) -> str:
    """A site path with a leading `~` (or `~/`) made absolute, given the site user's home."""
    return home + path[1:] if path == "~" or path.startswith("~/") else path


def shell_path(path: str) -> str:
    """A site path as one shell word: quoted, a leading `~/` left for the site's shell."""
    return '"$HOME"/' + shlex.quote(path[2:]) if path.startswith("~/") else shlex.quote(path)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"
