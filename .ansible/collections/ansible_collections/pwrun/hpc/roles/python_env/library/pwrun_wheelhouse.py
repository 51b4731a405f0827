#!/usr/bin/python
"""Ansible module (runs on the workstation): build the wheelhouse a cluster installs the worker
env from, cached by requirement set. A thin adapter over pwrun.cluster.pyenv."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: pwrun_wheelhouse
short_description: Build the worker env's wheelhouse on the workstation (cached)
description:
  - Runs on the workstation (delegated to localhost). Downloads binary wheels for the
    requirements and packs them into one archive, once per requirement set and Python version.
options:
  requirements:
    description: pip requirement strings (parsl==X first).
    type: list
    elements: str
    required: true
  python:
    description: Python major.minor the wheels are for.
    type: str
    required: true
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "requirements": {"type": "list", "elements": "str", "required": True},
            "python": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    try:
        from pwrun.cluster import pyenv
        from pwrun.errors import PwrunError
    except ImportError as exc:
        module.fail_json(msg=f"pwrun is not importable by this module's Python: {exc}")
    reqs, python = module.params["requirements"], module.params["python"]
    try:
        wheelhouse = pyenv.wheelhouse_for(reqs, python)
        if module.check_mode:
            changed = not wheelhouse.complete
        else:
            wheelhouse, changed = pyenv.build_wheelhouse(reqs, python)
    except PwrunError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(
        changed=changed,
        key=wheelhouse.key,
        archive=str(wheelhouse.archive),
        ready=wheelhouse.complete,
    )


if __name__ == "__main__":
    main()
