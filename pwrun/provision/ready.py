"""Skip provisioning a site whose recorded state still holds, checked in one ssh round trip.

After site.yml makes a site ready, pwrun records what that depended on here (a fingerprint of
the site's inventory variables, pwrun's Ansible content and version, the workstation's Parsl and
Python) and what the site looked like then: the answer to a probe (home, the env's completion
marker, its python, the scheduler's partitions or queues). A later run whose fingerprint is the
same sends the probe again over the shared ssh connection the tunnels use anyway; the same answer
means nothing changed, so the recorded facts stand and ansible-runner is not started. Any
difference (a removed env, a new partition, an edited role or inventory) means site.yml runs as
before.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from pwrun import __version__, state
from pwrun.cluster.pyenv import workstation_parsl, workstation_python
from pwrun.cluster.scheduler import facts_command, parse_facts
from pwrun.errors import InfrastructureError, PwrunError
from pwrun.provision.content import CONTENT
from pwrun.provision.inventory import chosen_sites, read_inventory, ssh_target
from pwrun.provision.runner import SKIP_TAGS, provision
from pwrun.transport.ssh import SSHTarget

CONTENT_PARTS = ("site.yml", "ansible.cfg", "playbooks", "roles")
SCHEDULER_MARK = "scheduler:"
T = TypeVar("T")


@dataclass(frozen=True)
class SiteState:
    """A provisioned site as recorded: what it depended on, its facts, its probe's answer."""

    fingerprint: str
    facts: dict[str, Any]
    probe: str
    answer: str  # canonical


@functools.cache
def content_digest() -> str:
    """A digest of pwrun's Ansible content: an edited role means provisioning again."""
    digest = hashlib.sha256()
    for part in CONTENT_PARTS:
        top = CONTENT / part
        for path in sorted([top] if top.is_file() else top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(CONTENT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def fingerprint(hostvars: dict[str, Any]) -> str:
    """What provisioning a site depends on, on this workstation."""
    inputs = [hostvars, __version__, workstation_parsl(), workstation_python(), SKIP_TAGS]
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode())
    digest.update(content_digest().encode())
    return digest.hexdigest()


def probe_command(facts: dict[str, Any]) -> str:
    """One shell command whose answer (once `canonical`) changes when the ready site does."""
    env = shlex.quote(str(facts.get("pwrun_env_path", "")))
    return (
        f'echo "home=$HOME"; printf "marker=%s\\n" "$(cat -- {env}/.pwrun-env.json 2>&1)";'
        f" test -x {env}/bin/python && echo python=ok; echo {SCHEDULER_MARK};"
        f" ( {facts_command()} ) 2>&1"
    )


def canonical(answer: str) -> str:
    """The probe's answer without what varies while nothing changed: sinfo prints a partition
    once per node state (idle, completing...), pbsnodes each node's state and load, so the
    scheduler's answer counts only once parsed."""
    head, _, scheduler = answer.partition(f"{SCHEDULER_MARK}\n")
    try:
        facts = parse_facts(scheduler)
    except PwrunError:
        return answer
    return head + json.dumps(facts, sort_keys=True)


def record_path(site: str) -> Path:
    return state.private_dir("sites") / f"{site}.json"


def recorded(site: str) -> SiteState | None:
    data = state.read_record(record_path(site))
    try:
        return SiteState(**data) if data else None
    except TypeError:
        return None  # an older record's shape: provision again


def still_ready(site: str, target: SSHTarget, expected: str) -> dict[str, Any] | None:
    """The recorded facts if the site's state still holds; None when it must be provisioned."""
    known = recorded(site)
    if known is None or known.fingerprint != expected:
        return None
    try:
        answer = target.run(known.probe, check=False).stdout
    except InfrastructureError:
        return None  # unreachable now: site.yml says why, naming the site
    return known.facts if canonical(answer) == known.answer else None


def remember(site: str, target: SSHTarget, expected: str, facts: dict[str, Any]) -> None:
    """Record a site site.yml has just made ready (unreachable now: no record, provision again)."""
    probe = probe_command(facts)
    try:
        answer = target.run(probe, check=False).stdout
    except InfrastructureError:
        return
    known = SiteState(expected, facts, probe, canonical(answer))
    state.write_atomic(record_path(site), json.dumps(asdict(known)))


def ready(
    sites: dict[str, dict[str, Any]],
    targets: dict[str, SSHTarget],
    run_dir: Path,
    force: bool = False,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Every site's facts, running site.yml on the sites whose state no longer holds (on all
    of them with `force`), and recording them afterwards.

    `sites` are in Ansible's view (Inventory.ansible_hosts). Returns the facts, and the sites
    that were provisioned now.
    """
    expected = {site: fingerprint(hostvars) for site, hostvars in sites.items()}
    facts: dict[str, dict[str, Any]] = {}
    if not force:
        checked = each(sites, lambda site: still_ready(site, targets[site], expected[site]))
        facts = {site: known for site, known in checked.items() if known}
    stale = sorted(set(sites) - set(facts))
    if stale:
        made = provision({site: sites[site] for site in stale}, run_dir)
        each(stale, lambda site: remember(site, targets[site], expected[site], made.get(site, {})))
        facts |= {site: made.get(site, {}) for site in stale}
    return facts, stale


def each(sites: Iterable[str], work: Callable[[str], T]) -> dict[str, T]:
    """`work` on every site at once (each is mostly an ssh round trip)."""
    sites = list(sites)
    with ThreadPoolExecutor(max_workers=len(sites) or 1, thread_name_prefix="pwrun-ready") as pool:
        return dict(zip(sites, pool.map(work, sites), strict=True))


def converge(inventory: Path, limit: list[str] | None, run_dir: Path) -> dict[str, dict[str, Any]]:
    """`pwrun provision`: site.yml on the chosen clusters (default: every one that is on),
    recorded so that later runs take the fast path; each cluster's facts."""
    clusters = read_inventory(inventory)
    sites = chosen_sites(clusters, limit)
    targets = {site: ssh_target(site, clusters.hosts[site]) for site in sites}
    facts, _ = ready(sites, targets, run_dir, force=True)
    return facts
