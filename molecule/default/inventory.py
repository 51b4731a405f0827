#!/usr/bin/env python3
"""Ansible script inventory: the lab's inventory.yml (from create.yml), or no hosts before it.

The scenario also points the ssh_access role at files inside the scenario's ephemeral
directory, so a test run never edits the user's own ~/.ssh.
"""

import json
import os
import sys
from pathlib import Path

import yaml


def walk(name: str, group: dict, groups: dict, hostvars: dict) -> None:
    hosts = group.get("hosts") or {}
    children = group.get("children") or {}
    groups[name] = {
        "hosts": list(hosts),
        "vars": group.get("vars") or {},
        "children": list(children),
    }
    for host, variables in hosts.items():
        hostvars.setdefault(host, {}).update(variables or {})
    for child, child_group in children.items():
        walk(child, child_group or {}, groups, hostvars)


def main() -> None:
    groups: dict = {}
    hostvars: dict = {}
    lab_inventory = Path(os.environ.get("PWRUN_LAB_DIR", "/nonexistent"), "inventory.yml")
    if lab_inventory.is_file():
        for name, group in (yaml.safe_load(lab_inventory.read_text()) or {}).items():
            walk(name, group or {}, groups, hostvars)
        ssh_dir = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "workstation-ssh")
        groups.setdefault("lab", {"hosts": [], "children": []}).setdefault("vars", {}).update(
            ssh_access_config_file=str(ssh_dir / "config"),
            ssh_access_known_hosts_file=str(ssh_dir / "known_hosts"),
        )
    json.dump(
        {**groups, "_meta": {"hostvars": hostvars}} if "--list" in sys.argv else {}, sys.stdout
    )


if __name__ == "__main__":
    main()
