"""The files a lab puts on disk: each site's own /etc, home and per-node /var, and the keys,
known_hosts, ssh_config and inventory with which the workstation reaches the sites."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from pwrun.lab import render
from pwrun.lab.model import LAB_UID, LAB_USER, LabRecord, Site
from pwrun.lab.processes import run

HOST_KEY = "ssh/ssh_host_ed25519_key"  # in a site's /etc
NODE_VAR = ("log/slurm", "log/munge", "spool/slurmctld", "spool/slurmd", "munge")
MUNGE_PRIVATE = ("log/munge", "munge")


def make_key(path: Path, comment: str) -> None:
    """A new ed25519 key pair without passphrase at `path` and `path`.pub."""
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))


def write_site(lab: LabRecord, site: Site) -> None:
    """The site's own /etc (a copy with its users, hosts, Slurm, munge and sshd), home and /var."""
    site_dir = lab.site_dir(site)
    site_dir.mkdir(parents=True)
    _write_etc(site_dir / "etc", site)
    _write_home(site_dir / "home", lab.key.with_suffix(".pub"))
    munge = pwd.getpwnam("munge")
    for node in site.nodes:
        var = lab.node_dir(site, node)
        for sub in NODE_VAR:
            (var / sub).mkdir(parents=True)
        for sub in MUNGE_PRIVATE:
            os.chown(var / sub, munge.pw_uid, munge.pw_gid)
            os.chmod(var / sub, 0o700)


def _write_etc(etc: Path, site: Site) -> None:
    run("cp", "-a", "/etc", str(etc))  # -a keeps owners: munge and sshd check them
    for host_key in (etc / "ssh").glob("ssh_host_*"):
        host_key.unlink()  # never copy the workstation's own host keys
    for name, line in render.account_lines().items():
        with open(etc / name, "a") as f:
            f.write(line)
    (etc / "hostname").write_text(f"{site.login.hostname}\n")
    (etc / "hosts").write_text(render.hosts(site))
    (etc / "slurm").mkdir(exist_ok=True)
    (etc / "slurm" / "slurm.conf").write_text(render.slurm_conf(site))
    (etc / "slurm" / "gres.conf").write_text(render.gres_conf(site))
    munge_key = etc / "munge" / "munge.key"
    munge_key.unlink(missing_ok=True)
    run("mungekey", "-c", "-k", str(munge_key))
    munge = pwd.getpwnam("munge")
    os.chown(munge_key, munge.pw_uid, munge.pw_gid)
    os.chmod(munge_key, 0o400)
    make_key(etc / HOST_KEY, site.login.hostname)
    (etc / "ssh" / "sshd_config").write_text(render.sshd_config(site))


def _write_home(home: Path, user_pub: Path) -> None:
    """/home with the lab user's authorized key (shared by the site's nodes)."""
    ssh_dir = home / LAB_USER / ".ssh"
    ssh_dir.mkdir(parents=True)
    (ssh_dir / "authorized_keys").write_text(user_pub.read_text())
    os.chmod(home, 0o755)
    os.chmod(home / LAB_USER, 0o755)
    os.chmod(ssh_dir, 0o700)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    for path in (home / LAB_USER, ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, LAB_UID, LAB_UID)


def write_client(lab: LabRecord) -> None:
    """known_hosts (each site's host key), ssh_config and inventory.yml in the lab directory."""
    host_keys = {
        s.name: (lab.site_dir(s) / "etc" / f"{HOST_KEY}.pub").read_text() for s in lab.sites
    }
    lab.known_hosts.write_text(render.known_hosts(lab, host_keys))
    lab.ssh_config.write_text(render.ssh_config(lab))
    lab.inventory.write_text(render.inventory(lab))
