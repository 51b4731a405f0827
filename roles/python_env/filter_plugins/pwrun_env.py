"""Filters over pwrun.cluster.pyenv: the env's plan and the cluster probe's check."""

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


class FilterModule:
    def filters(self) -> dict:
        return {
            "pwrun_env_plan": pwrun_env_plan,
            "pwrun_env_probe": pwrun_env_probe,
        }
