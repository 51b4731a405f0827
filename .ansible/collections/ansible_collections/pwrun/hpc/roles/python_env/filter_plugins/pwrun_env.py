"""Filters over pwrun: the env's plan, the cluster probe's check, site paths with `~`."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def pwrun_env_plan(parsl_version: str, packages: list[str]) -> dict:
    """Parsl version (empty: the workstation's), Python, requirements, wheelhouse key."""
    from pwrun.cluster import pyenv
    from pwrun.errors import PwrunError

    try:
        return pyenv.plan(parsl_version, list(packages))
    except PwrunError as exc:
        raise AnsibleFilterError(str(exc)) from None


def pwrun_env_probe(probe: dict, host: str, check_python: bool) -> dict:
    """home, python and the env's marker from the probe; fails saying what to change."""
    from pwrun.cluster import pyenv
    from pwrun.errors import PwrunError

    try:
        return pyenv.read_probe(host, probe.get("rc", 1), probe.get("stdout", ""), check_python)
    except PwrunError as exc:
        raise AnsibleFilterError(str(exc)) from None


def pwrun_expand_home(path: str, home: str) -> str:
    """A site path with a leading `~` made absolute (pwrun.transport.ssh.expand_home)."""
    from pwrun.transport.ssh import expand_home

    return expand_home(path, home)


def pwrun_shell_path(path: str) -> str:
    """A site path as one shell word, `~/` left to the shell (pwrun.transport.ssh.shell_path)."""
    from pwrun.transport.ssh import shell_path

    return shell_path(path)


class FilterModule:
    def filters(self) -> dict:
        return {
            "pwrun_env_plan": pwrun_env_plan,
            "pwrun_env_probe": pwrun_env_probe,
            "pwrun_expand_home": pwrun_expand_home,
            "pwrun_shell_path": pwrun_shell_path,
        }
