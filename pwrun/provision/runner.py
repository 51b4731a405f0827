"""Provisioning through ansible-runner: site.yml on the run's clusters, with live progress."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import ansible_runner
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pwrun import state
from pwrun.console import warn
from pwrun.errors import InfrastructureError
from pwrun.process import signals_deferred
from pwrun.provision.content import CONTENT, allowed_env, ansible_env

# pwrun opens its own tunnels (one per executor) and never edits ~/.ssh.
SKIP_TAGS = "tunnel,ssh_access"
# Connection passwords: pwrun's ssh is key-only (BatchMode), so they never go into its files.
PASSWORD_VAR = re.compile(r"ansible_(\w+_)?(pass|password|passphrase)$")


def close_control_masters(control_dir: Path) -> None:
    """End the shared ssh connections Ansible kept open, so no ssh process outlives the step."""
    for socket_path in control_dir.glob("*"):
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "pwrun-control-master"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
        )  # fmt: skip


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
            cause = row["failed"] if len(row["failed"]) <= 120 else row["failed"][:117] + "..."
            table.add_row(host, row["task"], str(row["ok"]), str(row["changed"]), cause)
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
    """Why a task failed on a host, without Ansible's wrapping ("Task failed: Finalization of
    task args for ... failed: ..."): pwrun's own errors start with the host's name."""
    res = data.get("res", {})
    lines = str(res.get("msg") or res.get("stderr") or "failed").strip().splitlines() or ["failed"]
    message, host = lines[-1], f"{data.get('host')}: "
    if host in message:
        return message[message.rindex(host) + len(host) :]
    return message.rsplit(" failed: ", 1)[-1] if message.startswith("Task failed: ") else message


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
    private_dir = run_dir / state.ANSIBLE_DIR
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
                skip_tags=SKIP_TAGS,
            )
            env = dict(os.environ)
            runner.config.env = allowed_env(
                env, {k: v for k, v in runner.config.env.items() if env.get(k) != v}
            )
            runner.config.pexpect_timeout = 0.5  # how often runner asks cancel_callback
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
