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
from pathlib import Path
from typing import Any

import ansible_runner
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pwrun import state
from pwrun.errors import InfrastructureError, PwrunError


def content_dir() -> Path:
    """Where site.yml, roles/, playbooks/ and ansible.cfg are: the source tree, else the install."""
    for candidate in (Path(__file__).resolve().parents[2], Path(sys.prefix) / "share" / "pwrun"):
        if (candidate / "site.yml").is_file():
            return candidate
    raise PwrunError(f"pwrun's Ansible content (site.yml, roles) is missing from {sys.prefix}")


CONTENT = content_dir()
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSW|CREDENTIAL", re.IGNORECASE)


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


def inventory_hosts(inventory: Path) -> dict[str, dict[str, Any]]:
    """Every host of an Ansible inventory (any source, the pwrun plugin too) with its hostvars."""
    if not inventory.exists():
        raise PwrunError(f"{inventory}: inventory not found")
    proc = subprocess.run(
        ["ansible-inventory", "-i", str(inventory), "--list"],
        capture_output=True, text=True, env={**os.environ, **ansible_env()}, cwd=CONTENT,
    )  # fmt: skip
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise PwrunError(f"{inventory}: {lines[-1] if lines else 'ansible-inventory failed'}")
    data = json.loads(proc.stdout)
    return {
        host: unwrap(vars_) for host, vars_ in data.get("_meta", {}).get("hostvars", {}).items()
    }


def unwrap(value: Any) -> Any:
    """ansible-core marks API strings unsafe ({"__ansible_unsafe": s}); give plain values."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


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


def secrets_blanked() -> dict[str, str]:
    """Every secret-looking variable of this environment, set to "".

    ansible-runner records the whole environment of the ansible process in its artifacts
    (artifacts/<id>/command); these overrides keep API keys and cloud credentials out of it.
    """
    return {name: "" for name in os.environ if SECRET_NAME.search(name)}


def provision(
    hostvars: dict[str, dict[str, Any]], run_dir: Path, extravars: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Run site.yml on these hosts in parallel; return each host's facts; name every failure.

    Ansible gets a snapshot of the hosts' resolved variables, not the inventory source: a
    dynamic inventory is not queried twice, and needs no credentials here.
    """
    hosts = sorted(hostvars)
    progress = Progress(hosts, Console(stderr=True))
    private_dir = run_dir / "ansible"
    private_dir.mkdir(mode=0o700)
    inventory = private_dir / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": hostvars}}, indent=1))
    # This run's own shared connections (an address may be reused by another cluster), under a
    # short path: a unix socket path holds at most 107 bytes.
    control_dir = Path(tempfile.mkdtemp(prefix="pwrun-cp-"))
    try:
        with progress.live:
            result = ansible_runner.run(
                private_data_dir=str(private_dir),
                playbook=str(CONTENT / "site.yml"),
                inventory=str(inventory),
                extravars=extravars or {},
                envvars={
                    **secrets_blanked(),
                    **ansible_env(),
                    "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
                },
                event_handler=progress,
                quiet=True,
                suppress_env_files=True,
                skip_tags="tunnel,ssh_access",
            )
    finally:
        close_control_masters(control_dir)
        shutil.rmtree(control_dir, ignore_errors=True)
    failed = {h: r["failed"] for h, r in progress.rows.items() if r["failed"]}
    if failed or result.rc != 0:
        detail = "; ".join(f"{h}: {m}" for h, m in failed.items()) or f"ansible exit {result.rc}"
        raise InfrastructureError(f"provisioning failed: {detail} (see {run_dir / 'ansible'})")
    return dict(progress.facts)
