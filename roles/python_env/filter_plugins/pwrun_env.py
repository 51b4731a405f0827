"""Filters over pwrun: the envs' plans and states, the cluster probe's check, site paths."""

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


def pwrun_label_env_plans(
    label_envs: list[dict], parsl_version: str, packages: list[str], given_path: str, backend: str
) -> list[dict]:
    """The site's env first, then one per distinct label env (pyenv.label_env_plans)."""
    from pwrun.cluster import pyenv
    from pwrun.errors import PwrunError

    try:
        return pyenv.label_env_plans(
            list(label_envs), parsl_version, list(packages), given_path, backend
        )
    except (PwrunError, ValueError) as exc:
        raise AnsibleFilterError(str(exc)) from None


def pwrun_env_states(
    plans: list[dict], markers: list[str], home: str, source: str, conda: str
) -> list[dict]:
    """Each env's path, markers, readiness and activation (pyenv.env_states)."""
    from pwrun.cluster import pyenv

    return pyenv.env_states(list(plans), list(markers), home, source, conda)


def pwrun_label_env_facts(envs: list[dict]) -> list[dict]:
    """The label envs as facts for `pwrun run`: labels, path, worker_init."""
    return [{k: env[k] for k in ("labels", "path", "worker_init")} for env in envs[1:]]


def pwrun_env_owner(labels: list[str]) -> str:
    """Whose env it is, for messages: the site's Parsl env, or a label's."""
    return f"env of label {', '.join(labels)}" if labels else "Parsl env"


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
            "pwrun_label_env_plans": pwrun_label_env_plans,
            "pwrun_env_states": pwrun_env_states,
            "pwrun_label_env_facts": pwrun_label_env_facts,
            "pwrun_env_owner": pwrun_env_owner,
            "pwrun_env_probe": pwrun_env_probe,
            "pwrun_expand_home": pwrun_expand_home,
            "pwrun_shell_path": pwrun_shell_path,
        }
