"""Filters over pwrun.provision.pyenv: the env's plan and the Python version check."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def pwrun_env_plan(parsl_version: str, packages: list[str]) -> dict:
    """Parsl version (empty: the workstation's), Python, requirements, wheelhouse key."""
    from pwrun.errors import PwrunError
    from pwrun.provision import pyenv

    try:
        return pyenv.plan(parsl_version, list(packages))
    except PwrunError as exc:
        raise AnsibleFilterError(str(exc)) from None


def pwrun_python_mismatch(cluster_python: str, host: str) -> str:
    """A message saying what to change when the cluster's Python differs ("" when it matches)."""
    from pwrun.provision import pyenv

    return pyenv.python_mismatch(host, cluster_python)


class FilterModule:
    def filters(self) -> dict:
        return {"pwrun_env_plan": pwrun_env_plan, "pwrun_python_mismatch": pwrun_python_mismatch}
