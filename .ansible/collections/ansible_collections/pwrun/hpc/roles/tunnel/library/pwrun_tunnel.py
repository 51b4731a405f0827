#!/usr/bin/python
"""Ansible module (runs on the workstation): keep or remove the tunnel that lets a cluster's
compute nodes reach a workstation port. A thin adapter over pwrun.transport.tunnel."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: pwrun_tunnel
short_description: Ensure a workstation-to-cluster tunnel (run with delegate_to localhost)
description:
  - Opens ssh -R to the login node's loopback plus a relay on its internal address, so compute
    nodes reach I(local_port) on the workstation at I(remote_address):I(remote_port). Works with
    C(GatewayPorts no). Host-key checking stays on.
options:
  name:
    description: Tunnel name (one per cluster).
    type: str
    required: true
  state:
    description: present or absent.
    type: str
    default: present
    choices: [present, absent]
  host:
    description: Login node address.
    type: str
  user:
    description: Login user.
    type: str
  port:
    description: ssh port.
    type: int
  identity_file:
    description: Private key.
    type: str
  ssh_args:
    description: Extra ssh arguments (ansible_ssh_common_args); only -o options are used.
    type: str
    default: ""
  local_port:
    description: Workstation loopback port; 0 keeps the current one or picks a free one.
    type: int
    default: 0
  remote_address:
    description: Login node's internal address (what compute nodes reach).
    type: str
  remote_port:
    description: Port on the login node; 0 keeps the current one or picks a free one.
    type: int
    default: 0
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "host": {"type": "str"},
            "user": {"type": "str"},
            "port": {"type": "int"},
            "identity_file": {"type": "str"},
            "ssh_args": {"type": "str", "default": ""},
            "local_port": {"type": "int", "default": 0},
            "remote_address": {"type": "str"},
            "remote_port": {"type": "int", "default": 0},
        },
        required_if=[("state", "present", ("host", "remote_address"))],
        supports_check_mode=True,
    )
    try:
        from pwrun.cluster import tunnels
        from pwrun.errors import PwrunError
        from pwrun.transport.ssh import SSHTarget
    except ImportError as exc:
        module.fail_json(msg=f"pwrun is not importable by this module's Python: {exc}")
    p = module.params
    try:
        if p["state"] == "absent":
            changed = tunnels.remove(p["name"], check=module.check_mode)
            module.exit_json(changed=changed, ansible_facts={"pwrun_tunnel": {}})
        facts, changed = tunnels.present(
            p["name"],
            SSHTarget.from_ansible(
                p["host"], p["user"], p["port"], p["identity_file"], p["ssh_args"]
            ),
            p["local_port"],
            p["remote_address"],
            p["remote_port"],
            check=module.check_mode,
        )
        module.exit_json(changed=changed, ansible_facts={"pwrun_tunnel": facts})
    except PwrunError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
