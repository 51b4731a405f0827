"""Tunnels that let a site's compute nodes reach a port on the workstation's loopback.

HPC login nodes keep ``GatewayPorts no``, so an ssh remote forward binds only the login node's
loopback. A tunnel is therefore one ssh process: ``-R 127.0.0.1:P:127.0.0.1:L`` plus, as its
remote command, a small relay (relay.py) listening on the login node's internal address, port P.
The relay exits when its ssh session ends, so killing the local ssh process removes both ends;
when the session outlives its ssh (a cut network), `end_remote` ends it from a later connection.
Each tunnel is recorded in pwrun's state directory so that a later process can check or close it.
"""

from __future__ import annotations

import json
import random
import shlex
import socket
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, cast

from pwrun import state
from pwrun.console import warn
from pwrun.errors import InfrastructureError
from pwrun.process import ProcessRef, wait_until
from pwrun.transport.ssh import SSHTarget, last_line

RELAY = Path(__file__).with_name("relay.py")
PORT_RANGE = (20000, 60999)
ATTEMPTS = 5
READY_TIMEOUT = 30
LISTENING = "listening"  # what the relay prints once bound
TAG = "pwrun-tunnel="  # the relay's last argument: TAG + the tunnel's name


@dataclass
class Tunnel:
    """An open tunnel: compute nodes connect to remote_address:remote_port, reach local_port."""

    name: str
    host: str
    local_port: int
    remote_address: str
    remote_port: int
    process: ProcessRef
    log: str

    def alive(self) -> bool:
        """True while its ssh process runs (the relay lives exactly as long)."""
        return self.process.alive()

    def serves(
        self, host: str, local_port: int, remote_address: str, remote_port: int | None = None
    ) -> bool:
        """Alive and already what was asked for (`remote_port` None: any port will do)."""
        return (
            self.alive()
            and self.host == host
            and self.local_port == local_port
            and self.remote_address == remote_address
            and remote_port in (None, self.remote_port)
        )

    def close(self) -> None:
        """Stop the ssh process (the relay follows) and forget the tunnel."""
        self.process.stop()
        record_path(self.name).unlink(missing_ok=True)
        Path(self.log).unlink(missing_ok=True)


def free_loopback_port() -> int:
    """A port nothing listens on at the workstation's loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tunnels_dir() -> Path:
    return state.private_dir("tunnels")


def record_path(name: str) -> Path:
    return tunnels_dir() / f"{name}.json"


def load(name: str) -> Tunnel | None:
    """The recorded tunnel called `name`, if any (None, with a warning, if unreadable)."""
    data = state.read_record(record_path(name))
    if data is None:
        return None
    try:
        return Tunnel(**{**data, "process": ProcessRef(**data["process"])})
    except (KeyError, TypeError) as exc:
        warn(f"{record_path(name)}: not a tunnel record ({exc}); skipped")
        return None


def recorded() -> list[Tunnel]:
    """Every tunnel recorded on this workstation."""
    return [t for p in sorted(tunnels_dir().glob("*.json")) if (t := load(p.stem))]


def ensure(
    name: str,
    target: SSHTarget,
    local_port: int,
    remote_address: str,
    remote_port: int | None = None,
) -> tuple[Tunnel, bool]:
    """Make tunnel `name` present: keep a healthy matching one, else (re)open it.

    Returns the tunnel and whether anything changed.
    """
    current = load(name)
    if current and current.serves(target.host, local_port, remote_address, remote_port):
        return current, False
    if current:
        current.close()
    return open_tunnel(name, target, local_port, remote_address, remote_port), True


def open_tunnel(
    name: str,
    target: SSHTarget,
    local_port: int,
    remote_address: str,
    remote_port: int | None = None,
) -> Tunnel:
    """Open a tunnel; with no `remote_port`, pick a free one (retrying on collisions)."""
    for _ in range(1 if remote_port else ATTEMPTS):
        port = remote_port or random.randint(*PORT_RANGE)
        log = tunnels_dir() / f"{name}.log"
        argv = target.argv(
            "-o", "ExitOnForwardFailure=yes", "-R", f"127.0.0.1:{port}:127.0.0.1:{local_port}",
            multiplex=False,
        )  # fmt: skip
        remote = f"exec python3 -u - {shlex.quote(remote_address)} {port} {port} {TAG}{name}"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [*argv, remote], stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        with cast(IO[bytes], proc.stdin) as code:  # `python3 -` reads the relay until EOF
            code.write(RELAY.read_bytes())
        tunnel = Tunnel(
            name, target.host, local_port, remote_address, port, ProcessRef.of(proc.pid), str(log)
        )
        outcome = _wait_listening(proc, log)
        if outcome is None:
            state.write_atomic(record_path(name), json.dumps(asdict(tunnel)))
            return tunnel
        log.unlink(missing_ok=True)
        if "address not available" in outcome:
            raise InfrastructureError(
                f"{target.host}: {remote_address} is not an address of the login node, so "
                "compute nodes cannot reach a tunnel there: set pwrun_private_address to the "
                "login node's internal IP"
            )
        port_taken = "port forwarding failed" in outcome or "address in use" in outcome
        if remote_port or not port_taken:
            raise InfrastructureError(f"{target.host}: tunnel to port {port} failed: {outcome}")
    raise InfrastructureError(f"{target.host}: no free port for a tunnel after {ATTEMPTS} tries")


def end_remote(name: str) -> str:
    """A shell command that ends what is left of tunnel `name` on its login node (its relay,
    which takes its ssh session and forward along) and returns once they are gone (at most 6 s).
    """
    pattern = shlex.quote(f"[ ]{TAG}{name}$")  # `[ ]`: never matches this command's own shell
    find = f'pgrep -u "$(id -u)" -f -- {pattern} >/dev/null'
    return (
        f'pkill -TERM -u "$(id -u)" -f -- {pattern}; i=0; '
        f"while {find} && [ $i -lt 60 ]; do sleep 0.1; i=$((i + 1)); done; true"
    )


def reopen(old: Tunnel, target: SSHTarget) -> Tunnel:
    """Open tunnel `old` again on the same ports, once what is left of it is gone: its local
    ssh if it still runs (stuck), and on the login node a session that did not notice its end
    (it would still hold the remote port)."""
    old.process.stop(grace=0)
    target.run(end_remote(old.name), timeout=READY_TIMEOUT)
    return open_tunnel(old.name, target, old.local_port, old.remote_address, old.remote_port)


def _wait_listening(proc: subprocess.Popen, log: Path) -> str | None:
    """None once the relay listens; else why the tunnel failed."""

    def relay_state() -> str | None:
        text = log.read_text()
        if "listening" in text.splitlines():
            return LISTENING
        return last_line(text) if proc.poll() is not None else None

    outcome = wait_until(relay_state, READY_TIMEOUT)
    if outcome == LISTENING:
        return None
    if outcome is None:
        proc.kill()
        proc.wait()
        return f"not ready after {READY_TIMEOUT}s"
    return outcome
