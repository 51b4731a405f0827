"""Which scheduler a login node offers, and its facts: one shell command, its output parsed.

The command looks for `sinfo` (Slurm), then `qstat` (the PBS family), on the login user's PATH,
and prints a `== <section>` line before each tool's output. The cluster_facts role runs it, and
so does the probe that checks a provisioned site still holds.
"""

from __future__ import annotations

import shlex

from pwrun.cluster.pbs import parse_pbs
from pwrun.cluster.slurm import parse_sinfo, sinfo_command
from pwrun.errors import PwrunError

SECTION = "== "
NO_SCHEDULER = "no scheduler: neither sinfo nor qstat is on the login node's PATH"


def facts_command(sinfo: str = "sinfo") -> str:
    """The shell command whose output `parse_facts` reads."""
    return (
        f"if command -v {shlex.quote(sinfo)} >/dev/null 2>&1; then"
        f" echo '{SECTION}slurm'; exec {sinfo_command(sinfo)}; fi; "
        "if command -v qstat >/dev/null 2>&1; then"
        f" echo '{SECTION}pbs'; echo '{SECTION}version'; qstat --version 2>&1;"
        f" echo '{SECTION}queues'; qstat -Q || exit; echo '{SECTION}nodes'; exec pbsnodes -a; fi; "
        f"echo {shlex.quote(NO_SCHEDULER)} >&2; exit 127"
    )


def sections(output: str) -> dict[str, str]:
    """The output split at its `== <section>` lines (text before the first one is dropped)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(SECTION):
            current = found.setdefault(line[len(SECTION) :].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def parse_facts(output: str, host: str = "cluster", rc: int = 0, error: str = "") -> dict:
    """The cluster's facts from `facts_command`'s output: `pwrun_scheduler` (slurm or pbs), its
    partitions or queues, the default one, cores per node; PBS adds `pwrun_pbs_flavour`."""
    parts = sections(output)
    if "slurm" in parts:
        return parse_sinfo(parts["slurm"], host, rc, error)
    if rc != 0 or "pbs" not in parts:
        why = " ".join(error.split()) or " ".join(output.split()[-12:]) or f"exit {rc}"
        raise PwrunError(
            f"{host}: no scheduler facts ({why}): pwrun needs Slurm's (sinfo) or PBS's (qstat, "
            "pbsnodes) client tools on the login node's PATH"
        )
    return parse_pbs(parts, host)
