"""pwrun's Ansible content (site.yml, roles, plugins) and the environment Ansible runs with."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

from pwrun import state
from pwrun.errors import PwrunError


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


def ansible_env() -> dict[str, str]:
    """Environment for Ansible: the project's ansible.cfg, roles and plugins, pwrun's state dir."""
    return {
        "ANSIBLE_CONFIG": str(CONTENT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(CONTENT / "roles"),
        "ANSIBLE_INVENTORY_PLUGINS": str(CONTENT / "inventory_plugins"),
        "PWRUN_HOME": str(state.home()),
    }


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
