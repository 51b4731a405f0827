"""The inventory as pwrun reads it through ansible-inventory: hosts, and how to reach them."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pwrun import validation
from pwrun.console import warn
from pwrun.errors import PwrunError
from pwrun.provision.content import CONTENT, ansible_env
from pwrun.transport.ssh import SSHTarget, last_line

# How ansible-inventory says that a plugin could not read a source.
FAILED_WITH = re.compile(r"^\[WARNING\]: Failed to parse inventory with '([\w.]+)' plugin: (.*)$")
PLUGIN_PREFERENCE = ("pwrun", "auto", "yaml", "ini", "host_list")
PARSE_NOISE = ("[WARNING]: Unable to parse ", "[WARNING]: No inventory was parsed")


@dataclass(frozen=True)
class Inventory:
    """An Ansible inventory as pwrun reads it, in two views of the same hosts.

    `hosts` has plain values for pwrun's own logic. `ansible_hosts` is ansible-inventory's own
    JSON, in which values that came from APIs are still marked unsafe
    (``{"__ansible_unsafe": ...}``): only that view is ever handed back to Ansible, so API data
    is never templated.
    """

    path: Path | None
    hosts: dict[str, dict[str, Any]]
    ansible_hosts: dict[str, dict[str, Any]]

    @classmethod
    def empty(cls) -> Inventory:
        """No clusters: a run whose labels are all on the local site."""
        return cls(None, {}, {})


def read_inventory(path: Path, flush_cache: bool = False) -> Inventory:
    """Every host of an Ansible inventory (any source, the pwrun plugin too) with its hostvars;
    `flush_cache` asks the APIs again even when the file caches their answers.

    A source no plugin can read, or that a plugin fails on, is an error naming the file and
    the plugin's reason; the plugins' warnings (a failing API source, say) are shown.
    """
    path = path.expanduser().resolve()
    if not path.exists():
        raise PwrunError(f"{path}: inventory not found")
    _check_plugin_file_name(path)
    flush = ["--flush-cache"] if flush_cache else []
    proc = subprocess.run(
        ["ansible-inventory", "-i", str(path), "--list", *flush],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=CONTENT,
        env={**os.environ, **ansible_env(), "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"},
    )  # fmt: skip
    causes: dict[str, str] = {}
    for line in proc.stderr.splitlines():
        if failed := FAILED_WITH.match(line):
            causes[failed[1]] = failed[2]
        elif line.startswith("[WARNING]: ") and not line.startswith(PARSE_NOISE):
            warn(f"{path}: {line.removeprefix('[WARNING]: ')}")
    if proc.returncode != 0:
        cause = next((causes[p] for p in PLUGIN_PREFERENCE if p in causes), None)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("[ERROR]")]
        said = f"ansible-inventory failed: {last_line(proc.stderr)}"
        detail = cause or (errors[-1].removeprefix("[ERROR]: ") if errors else said)
        raise PwrunError(f"{path}: {detail}")
    try:
        hostvars = json.loads(proc.stdout)["_meta"]["hostvars"]
    except (ValueError, KeyError, TypeError):
        raise PwrunError(f"{path}: ansible-inventory gave no host variables") from None
    return Inventory(path, {host: unwrap(v) for host, v in hostvars.items()}, hostvars)


def chosen_sites(inventory: Inventory, limit: list[str] | None) -> dict[str, dict[str, Any]]:
    """The clusters `pwrun provision` makes ready, in Ansible's view: those named in `limit`,
    else every one that is on."""
    unknown = sorted(set(limit or ()) - set(inventory.hosts))
    if unknown:
        raise PwrunError(f"{inventory.path}: no cluster {', '.join(unknown)} in the inventory")
    chosen = limit or [host for host, facts in inventory.hosts.items() if is_on(facts)]
    if not chosen:
        known = ", ".join(sorted(inventory.hosts)) or "none"
        raise PwrunError(f"{inventory.path}: no cluster is on (clusters: {known})")
    return {host: inventory.ansible_hosts[host] for host in chosen}


def is_on(hostvars: dict[str, Any]) -> bool:
    """A cluster is on unless its inventory says otherwise (`pwrun_status`)."""
    return hostvars.get("pwrun_status", "on") == "on"


def _check_plugin_file_name(path: Path) -> None:
    """A `plugin: pwrun` file not named *pwrun.yml is skipped by the plugin: say so."""
    if path.is_dir() or path.name.endswith(("pwrun.yml", "pwrun.yaml")):
        return
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return  # not ours to judge: ansible-inventory names the problem
    if isinstance(data, dict) and data.get("plugin") == "pwrun":
        raise PwrunError(
            f"{path}: a file for the pwrun inventory plugin must be named *.pwrun.yml "
            "(e.g. clusters.pwrun.yml)"
        )


def unwrap(value: Any) -> Any:
    """ansible-core marks API strings unsafe ({"__ansible_unsafe": s}); give plain values."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def ssh_target(site: str, hostvars: dict[str, Any]) -> SSHTarget:
    """How pwrun reaches a site's login node, from its Ansible connection variables."""
    try:
        return SSHTarget.from_ansible(
            hostvars["ansible_host"],
            hostvars.get("ansible_user"),
            hostvars.get("ansible_port"),
            hostvars.get("ansible_ssh_private_key_file"),
            hostvars.get("ansible_ssh_common_args", ""),
        )
    except KeyError:
        raise PwrunError(f"inventory host {site}: no ansible_host") from None
    except PwrunError as exc:
        raise PwrunError(f"inventory host {site}: {exc}") from None


def worker_address(site: str, hostvars: dict[str, Any]) -> str:
    """The login node's address as compute nodes reach it: an IP (Parsl's `-a` takes IPs)."""
    for field in ("pwrun_private_address", "ansible_host"):
        value = hostvars.get(field)
        if not value:
            continue
        try:
            return validation.ip_address(str(value))
        except ValueError:
            raise PwrunError(
                f"inventory host {site}: {field}: {value!r} is not an IP address; set "
                "pwrun_private_address to the login node's internal IP (what compute nodes reach)"
            ) from None
    raise PwrunError(f"inventory host {site}: no ansible_host")
