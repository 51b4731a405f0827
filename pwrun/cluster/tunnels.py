"""What the tunnel role asks for: a tunnel present (kept or reopened) or absent."""

from __future__ import annotations

from pwrun.errors import InfrastructureError
from pwrun.transport import tunnel
from pwrun.transport.ssh import SSHTarget


def present(
    name: str,
    ssh: SSHTarget,
    local_port: int,
    remote_address: str,
    remote_port: int = 0,
    check: bool = False,
) -> tuple[dict, bool]:
    """Keep a healthy matching tunnel or (re)open it; 0 ports mean keep current or choose."""
    current = tunnel.load(name)
    local_port = local_port or (current.local_port if current else 0) or tunnel.free_loopback_port()
    if check:
        keep = current is not None and current.serves(
            ssh.host, local_port, remote_address, remote_port or None
        )
        port = current.remote_port if keep and current else remote_port
        return _facts(local_port, remote_address, port), not keep
    try:
        opened, changed = tunnel.ensure(name, ssh, local_port, remote_address, remote_port or None)
    except InfrastructureError as exc:
        raise InfrastructureError(f"{name}: {exc}") from None
    return _facts(opened.local_port, opened.remote_address, opened.remote_port), changed


def remove(name: str, check: bool = False) -> bool:
    """Close tunnel `name` (ssh process, relay, record); False when there was none."""
    current = tunnel.load(name)
    if current is None:
        return False
    if not check:
        current.close()
    return True


def _facts(local_port: int, remote_address: str, remote_port: int) -> dict:
    return {"local_port": local_port, "remote_address": remote_address, "remote_port": remote_port}
