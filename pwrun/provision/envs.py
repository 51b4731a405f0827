"""Per-label worker envs: what the roles build for a run's labels, the envs users bring, and
which env each label's workers activate.

A label with `packages` (or a requirements file) or a `conda_environment` gets an env built by
the python_env role, one per distinct set per site (the role keys it by content). A label that
names its own env (`python`, `activate`, `conda_prefix` + `conda_env`) gets that env, after its
Python and Parsl versions are checked against the workstation's, before any job is submitted.
Every other label uses its site's env.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pwrun.cluster.pyenv import (
    own_env_activation,
    own_env_check,
    own_env_problems,
    workstation_parsl,
    workstation_python,
)
from pwrun.errors import InfrastructureError, PwrunError
from pwrun.parslcfg.executors import ClusterSpec, OwnEnv
from pwrun.transport.ssh import SSHTarget, last_line

LABEL_ENVS = "python_env_label_envs"  # the role's variable
OWN_ENV_FIELD = {"python": "python", "activate": "activate", "conda": "conda_env"}


def label_envs(remote: Mapping[str, ClusterSpec]) -> dict[str, list[dict[str, Any]]]:
    """Per site, the distinct envs its labels ask pwrun to build, in the order of the labels."""
    per_site: dict[str, dict[tuple, dict[str, Any]]] = {}
    for label, spec in remote.items():
        if not (spec.packages or spec.environment):
            continue
        packages = sorted(set(spec.packages))
        key = (tuple(packages), spec.environment, spec.conda_prefix or "")
        wanted = per_site.setdefault(spec.site, {}).setdefault(
            key,
            {
                "labels": [],
                "packages": packages,
                "environment": spec.environment,
                "conda_prefix": spec.conda_prefix or "",
            },
        )
        wanted["labels"].append(label)
    return {site: list(envs.values()) for site, envs in per_site.items()}


def with_label_envs(
    sites: dict[str, dict[str, Any]], remote: Mapping[str, ClusterSpec]
) -> dict[str, dict[str, Any]]:
    """Ansible's view of the sites with each one's label envs added (as untrusted text: never
    templated); a site without any is left as it is, so its recorded state still holds."""
    wanted = label_envs(remote)
    return {
        site: {**hostvars, LABEL_ENVS: _unsafe(wanted[site])} if site in wanted else hostvars
        for site, hostvars in sites.items()
    }


def _unsafe(value: Any) -> Any:
    """Strings marked as ansible-inventory marks API values: Ansible never templates them."""
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, dict):
        return {k: _unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsafe(v) for v in value]
    return value


def worker_init(label: str, spec: ClusterSpec, facts: dict[str, Any]) -> str:
    """The shell line that activates `label`'s env: its own, the one built for it, or its
    site's."""
    own = spec.own_env()
    if own is not None:
        return own_env_activation(own.kind, own.path, own.name)
    if spec.packages or spec.environment:
        for env in facts.get("pwrun_label_envs", []):
            if label in env.get("labels", []):
                return str(env["worker_init"])
        raise InfrastructureError(f"{spec.site}: provisioning made no env for label {label}")
    return str(facts.get("pwrun_worker_init", ""))


def check_own_envs(
    remote: Mapping[str, ClusterSpec], targets: Mapping[str, SSHTarget], source: str
) -> None:
    """Check every env a label brings on its site (one ssh round trip per site, all at once):
    its Python major.minor and Parsl version must be the workstation's. Raises PwrunError
    naming each label (`source` names the executors) and saying what to change."""
    per_site: dict[str, list[tuple[str, OwnEnv]]] = {}
    for label, spec in remote.items():
        if (own := spec.own_env()) is not None:
            per_site.setdefault(spec.site, []).append((label, own))
    if not per_site:
        return
    parsl_version, python = workstation_parsl(), workstation_python()

    def check(site: str) -> list[str]:
        envs = per_site[site]
        command = own_env_check([(own.kind, own.path, own.name) for _, own in envs])
        proc = targets[site].run(command, check=False)
        if proc.returncode == 255:
            raise InfrastructureError(f"{site}: ssh failed: {last_line(proc.stderr)}")
        problems = own_env_problems(proc.stdout, len(envs), parsl_version, python)
        return [
            f"{source}: {label}.{OWN_ENV_FIELD[own.kind]}: {_described(own)} on {site}: {problem}"
            for (label, own), problem in zip(envs, problems, strict=True)
            if problem
        ]

    with ThreadPoolExecutor(len(per_site), thread_name_prefix="pwrun-own-env") as pool:
        problems = [line for lines in pool.map(check, per_site) for line in lines]
    if problems:
        raise PwrunError("; ".join(problems))


def _described(own: OwnEnv) -> str:
    if own.kind == "conda":
        return f"env {own.name!r} of the conda at {own.path}"
    return own.path
