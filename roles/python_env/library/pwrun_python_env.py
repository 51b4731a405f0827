#!/usr/bin/python
"""Ansible module (runs on the workstation): resolve the worker env's requirements and build the
wheelhouse the cluster installs from. A thin adapter over pwrun.provision.pyenv."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: pwrun_python_env
short_description: Resolve the worker env's Parsl version and build its wheelhouse (workstation)
description:
  - Runs on the workstation (delegated to localhost). Checks that the cluster's Python
    major.minor matches the workstation's and builds a wheelhouse cached by requirement set.
options:
  host:
    description: Cluster name for messages.
    type: str
    required: true
  parsl_version:
    description: Parsl version; empty means the workstation's.
    type: str
    default: ""
  packages:
    description: Extra packages for the env.
    type: list
    elements: str
    default: []
  cluster_python:
    description: The cluster python3's version (empty skips the check).
    type: str
    default: ""
  wheelhouse:
    description: Build the wheelhouse.
    type: bool
    default: true
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "required": True},
            "parsl_version": {"type": "str", "default": ""},
            "packages": {"type": "list", "elements": "str", "default": []},
            "cluster_python": {"type": "str", "default": ""},
            "wheelhouse": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    try:
        from pwrun.errors import PwrunError
        from pwrun.provision import pyenv
    except ImportError as exc:
        module.fail_json(msg=f"pwrun is not importable by {module._name}'s Python: {exc}")
    p = module.params
    try:
        version = p["parsl_version"] or pyenv.workstation_parsl()
        python = pyenv.workstation_python()
        if p["cluster_python"]:
            pyenv.check_python_match(p["host"], p["cluster_python"], python)
        reqs = pyenv.requirements(version, p["packages"])
        result = {"parsl_version": version, "python": python, "requirements": reqs}
        changed = False
        if p["wheelhouse"]:
            wheelhouse = pyenv.wheelhouse_for(reqs, python)
            if module.check_mode:
                changed = not wheelhouse.complete
            else:
                wheelhouse, changed = pyenv.build_wheelhouse(reqs, python)
            result |= {
                "wheelhouse_key": wheelhouse.key,
                "wheelhouse_archive": str(wheelhouse.archive),
                "wheelhouse_ready": wheelhouse.complete,
            }
        module.exit_json(changed=changed, **result)
    except PwrunError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
