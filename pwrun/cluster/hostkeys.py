"""The workstation's ssh files for clusters: pinned host keys, known_hosts lookups."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from pwrun import state
from pwrun.transport.ssh import ssh_options

PINNED_DIR = "known_hosts"


def pin(cluster: str, address: str, keys: Sequence[str]) -> Path:
    """A known_hosts file of pwrun's (`$PWRUN_HOME/known_hosts/<cluster>`, 0600) that pins
    `keys` for `address`, the keys an API reported for the cluster's controller; rewritten
    only when they change. `keys` are checked public keys (pwrun.validation.host_key)."""
    path = state.private_dir(PINNED_DIR) / cluster
    text = "".join(f"{address} {key}\n" for key in keys)
    try:
        unchanged = path.read_text() == text
    except OSError:
        unchanged = False
    if not unchanged:
        state.write_atomic(path, text)
    return path


def known_hosts_file_from_args(ssh_args: str) -> str | None:
    """The (first) UserKnownHostsFile named in ssh arguments such as ansible_ssh_common_args."""
    for key, value in ssh_options(ssh_args):
        if key.lower() == "userknownhostsfile" and value:
            return value.split()[0]
    return None


def pinned_keys(host: str, known_hosts: str | None, port: int | None = None) -> list[str]:
    """The "type base64" keys a known_hosts file pins for `host` (hashed entries included)."""
    if not known_hosts or not Path(known_hosts).expanduser().is_file():
        return []
    name = f"[{host}]:{port}" if port and port != 22 else host
    proc = subprocess.run(
        ["ssh-keygen", "-F", name, "-f", str(Path(known_hosts).expanduser())],
        capture_output=True, text=True,
    )  # fmt: skip
    keys = []
    for line in proc.stdout.splitlines():
        fields = line.split()
        if line.startswith("#") or len(fields) < 3 or fields[0].startswith("@"):
            continue
        keys.append(f"{fields[1]} {fields[2]}")
    return keys
