"""The text of the files a lab writes: site configs and firewall rules from the Jinja2
templates in ``templates/``, and the workstation's ssh and Ansible files for reaching sites."""

from __future__ import annotations

from pathlib import Path

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pwrun.lab.model import LAB_UID, LAB_USER, PARTITIONS, LabRecord, Site

TEMPLATES = Path(__file__).with_name("templates")
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,  # config files and nftables rules, not HTML
)


def render(template: str, **context: object) -> str:
    """`templates/<template>.j2` filled in with `context` (a missing name is an error)."""
    return _env.get_template(f"{template}.j2").render(user=LAB_USER, **context)


def slurm_conf(site: Site) -> str:
    return render("slurm.conf", site=site)


def sshd_config(site: Site) -> str:
    return render("sshd_config", site=site)


def hosts(site: Site) -> str:
    """/etc/hosts of every node of a site: the login node by its internal address."""
    return render("hosts", site=site)


def account_lines() -> dict[str, str]:
    """What to append to a site's /etc/passwd, group and shadow for the lab user ('*' in
    shadow: no password, but not locked, which sshd with ``UsePAM no`` requires)."""
    return {
        "passwd": f"{LAB_USER}:x:{LAB_UID}:{LAB_UID}:pwrun lab user:/home/{LAB_USER}:/bin/bash\n",
        "group": f"{LAB_USER}:x:{LAB_UID}:\n",
        "shadow": f"{LAB_USER}:*:19000:0:99999:7:::\n",
    }


def login_firewall() -> str:
    """nftables rules of a login node: only ssh and ping from outside."""
    return render("login.nft")


def workstation_firewall(site: Site) -> str:
    """nftables table in the workstation: no new connection from the site, no forwarding."""
    return render("workstation.nft", site=site)


def ssh_config(lab: LabRecord) -> str:
    return render("ssh_config", lab=lab)


def known_hosts(lab: LabRecord, host_keys: dict[str, str]) -> str:
    """known_hosts lines pinning each site's key, from its ``ssh_host_*.pub`` text by site name."""
    return "".join(f"{s.address} {' '.join(host_keys[s.name].split()[:2])}\n" for s in lab.sites)


def inventory(lab: LabRecord) -> str:
    """A static Ansible inventory of the lab's sites, strict host-key checking on."""
    common_args = (
        f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes "
        "-o IdentitiesOnly=yes"
    )
    hosts = {
        s.name: {
            "ansible_host": s.address,
            "ansible_user": LAB_USER,
            "pwrun_public_address": s.address,
            "pwrun_private_address": s.internal_address,
            "pwrun_scheduler": "pbs" if s.scheduler == "torque" else "slurm",
            "pwrun_partitions": list(PARTITIONS),
            "pwrun_status": "on",
            "pwrun_source": "lab",
        }
        for s in lab.sites
    }
    document = {
        "all": {
            "vars": {
                "ansible_ssh_private_key_file": str(lab.key),
                "ansible_ssh_common_args": common_args,
                "ansible_python_interpreter": "/usr/bin/python3",
            },
            "children": {"lab": {"hosts": hosts}},
        }
    }
    return yaml.safe_dump(document, sort_keys=False)
