"""Provisioning through ansible-runner: site.yml on the run's clusters, with live progress."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ansible_runner
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pwrun import state
from pwrun.console import warn
from pwrun.errors import InfrastructureError, PwrunError
from pwrun.process import signals_deferred


def content_dir() -> Path:
    """Where site.yml, roles/, playbooks/ and ansible.cfg are: the source tree, else the install."""
    for candidate in (Path(__file__).resolve().parents[2], Path(sys.prefix) / "share" / "pwrun"):
        if (candidate / "site.yml").is_file():
            return candidate
    raise PwrunError(f"pwrun's Ansible content (site.yml, roles) is missing from {sys.prefix}")


CONTENT = content_dir()
# What Ansible may see of pwrun's environment: an allow-list (a deny-list by name misses
# PW_AUTH, SSHPASS, DATABASE_URL...). ansible-runner records Ansible's environment in its
# artifacts, so nothing else may reach it.
ENV_ALLOWED = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "SSH_AUTH_SOCK", "VIRTUAL_ENV", "PYTHONPATH", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
    "NO_PROXY", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT",
    "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR",
})  # fmt: skip
ENV_ALLOWED_PREFIXES = ("LC_", "ANSIBLE_")
# Connection passwords: pwrun's ssh is key-only (BatchMode), so they never go into its files.
PASSWORD_VAR = re.compile(r"ansible_(\w+_)?(pass|password|passphrase)$")
# How ansible-inventory says that a plugin could not read a source.
FAILED_WITH = re.compile(r"^\[WARNING\]: Failed to parse inventory with '([\w.]+)' plugin: (.*)$")
PLUGIN_PREFERENCE = ("pwrun", "auto", "yaml", "ini", "host_list")
PARSE_NOISE = ("[WARNING]: Unable to parse ", "[WARNING]: No inventory was parsed")


def ansible_env() -> dict[str, str]:
    """Environment for Ansible: the project's ansible.cfg, roles and plugins, pwrun's state dir."""
    return {
        "ANSIBLE_CONFIG": str(CONTENT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(CONTENT / "roles"),
        "ANSIBLE_INVENTORY_PLUGINS": str(CONTENT / "inventory_plugins"),
        "PWRUN_HOME": str(state.home()),
    }


def close_control_masters(control_dir: Path) -> None:
    """End the shared ssh connections Ansible kept open, so no ssh process outlives the step."""
    for socket_path in control_dir.glob("*"):
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "pwrun-control-master"],
            capture_output=True, timeout=10,
        )  # fmt: skip


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


def read_inventory(path: Path) -> Inventory:
    """Every host of an Ansible inventory (any source, the pwrun plugin too) with its hostvars.

    A source no plugin can read, or that a plugin fails on, is an error naming the file and
    the plugin's reason; the plugins' warnings (a failing API source, say) are shown.
    """
    path = path.expanduser().resolve()
    if not path.exists():
        raise PwrunError(f"{path}: inventory not found")
    _check_plugin_file_name(path)
    proc = subprocess.run(
        ["ansible-inventory", "-i", str(path), "--list"],
        capture_output=True, text=True, cwd=CONTENT,
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
        detail = cause or (errors[-1].removeprefix("[ERROR]: ") if errors else "unreadable")
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


def without_passwords(host: str, hostvars: dict[str, Any]) -> dict[str, Any]:
    """A host's variables minus connection passwords, which pwrun never writes to a file."""
    dropped = sorted(name for name in hostvars if PASSWORD_VAR.match(name))
    if dropped:
        warn(
            f"{host}: {', '.join(dropped)} not used: pwrun connects to clusters with ssh keys only"
        )
    return {name: value for name, value in hostvars.items() if name not in dropped}


def write_snapshot(hostvars: dict[str, dict[str, Any]], path: Path) -> Path:
    """A static inventory of these hosts (Ansible's view, marks kept; no passwords) at `path`."""
    hosts = {host: without_passwords(host, hostvars[host]) for host in sorted(hostvars)}
    state.write_atomic(path, json.dumps({"all": {"hosts": hosts}}, indent=1))
    return path


def allowed_env(env: dict[str, str], added: dict[str, str]) -> dict[str, str]:
    """The environment Ansible gets: what pwrun and ansible-runner set (`added`), plus the
    allow-listed variables of `env`, minus any URL that carries a password."""

    def allowed(name: str, value: str) -> bool:
        if name not in ENV_ALLOWED and not name.startswith(ENV_ALLOWED_PREFIXES):
            return False
        try:
            return urlsplit(value).password is None
        except ValueError:
            return False

    return {**{k: v for k, v in env.items() if allowed(k, v)}, **added}


class Progress:
    """A live table, one row per cluster: its current task and counts, built from runner events."""

    def __init__(self, hosts: list[str], console: Console) -> None:
        self.rows: dict[str, dict[str, Any]] = {
            h: {"task": "waiting", "ok": 0, "changed": 0, "failed": ""} for h in hosts
        }
        self.facts: dict[str, dict[str, Any]] = defaultdict(dict)
        self.live = Live(self.table(), console=console, transient=not console.is_terminal)

    def table(self) -> Table:
        table = Table("cluster", "task", "ok", "changed", "failed", title="provisioning")
        for host, row in self.rows.items():
            table.add_row(host, row["task"], str(row["ok"]), str(row["changed"]), row["failed"])
        return table

    def __call__(self, event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        host = data.get("host")
        row = self.rows.get(host)
        kind = event.get("event")
        if row is not None:
            if kind == "runner_on_start":
                row["task"] = data.get("task", "")
            elif kind == "runner_on_ok":
                row["ok"] += 1
                row["changed"] += bool(data.get("res", {}).get("changed"))
                self.facts[host].update(data.get("res", {}).get("ansible_facts", {}))
            elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get(
                "ignore_errors"
            ):
                row["failed"] = failure_message(data)
                row["task"] = data.get("task", "")
        self.live.update(self.table())
        return True  # keep the event in the artifacts


def failure_message(data: dict[str, Any]) -> str:
    res = data.get("res", {})
    message = res.get("msg") or res.get("stderr") or "failed"
    return str(message).strip().splitlines()[-1][:200]


def provision(
    hostvars: dict[str, dict[str, Any]], run_dir: Path, extravars: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Run site.yml on these hosts in parallel; return each host's facts; name every failure.

    `hostvars` are Ansible's own view (Inventory.ansible_hosts: API values still marked
    unsafe). Ansible gets a snapshot of them, not the inventory source: a dynamic inventory is
    not queried twice, and needs no credentials here. A Ctrl-C stops Ansible, then raises
    KeyboardInterrupt.
    """
    hosts = sorted(hostvars)
    progress = Progress(hosts, Console(stderr=True))
    private_dir = run_dir / "ansible"
    private_dir.mkdir(mode=0o700)
    inventory = write_snapshot(hostvars, private_dir / "inventory.json")
    # This run's own shared connections (an address may be reused by another cluster), under a
    # short path: a unix socket path holds at most 107 bytes.
    control_dir = Path(tempfile.mkdtemp(prefix="pwrun-cp-"))
    try:
        with progress.live, signals_deferred() as interrupted:
            runner = ansible_runner.interface.init_runner(
                private_data_dir=str(private_dir),
                playbook=str(CONTENT / "site.yml"),
                inventory=str(inventory),
                extravars=extravars or {},
                envvars={**ansible_env(), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir)},
                event_handler=progress,
                cancel_callback=interrupted.is_set,
                quiet=True,
                suppress_env_files=True,
                skip_tags="tunnel,ssh_access",
            )
            env = dict(os.environ)
            runner.config.env = allowed_env(
                env, {k: v for k, v in runner.config.env.items() if env.get(k) != v}
            )
            runner.run()
            result = runner
    finally:
        close_control_masters(control_dir)
        shutil.rmtree(control_dir, ignore_errors=True)
    failed = {h: r["failed"] for h, r in progress.rows.items() if r["failed"]}
    if failed or result.rc != 0:
        detail = "; ".join(f"{h}: {m}" for h, m in failed.items()) or f"ansible exit {result.rc}"
        raise InfrastructureError(f"provisioning failed: {detail} (see {run_dir / 'ansible'})")
    return dict(progress.facts)
