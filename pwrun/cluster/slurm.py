"""Cluster facts from Slurm's own tools, for the Parsl config renderer."""

from __future__ import annotations

import re
import shlex

from pwrun.errors import PwrunError

# What the facts role asks sinfo for: partition, CPUs per node, node count, availability.
SINFO_FORMAT = "%P|%c|%D|%a"


def sinfo_command(sinfo: str = "sinfo") -> str:
    """The shell command whose output parse_sinfo reads (the role runs it; so does the check
    that a provisioned site still holds)."""
    return f"{shlex.quote(sinfo)} -h -o {shlex.quote(SINFO_FORMAT)}"


def parse_sinfo(output: str, host: str = "cluster", rc: int = 0, error: str = "") -> dict:
    """Facts from `sinfo -h -o SINFO_FORMAT`: partitions, default partition, cores per node."""
    if rc != 0:
        raise PwrunError(
            f"{host}: sinfo failed ({' '.join(error.split()) or f'exit {rc}'}): pwrun needs "
            "Slurm's client tools on the login node's PATH (or set cluster_facts_sinfo)."
        )
    partitions: dict[str, dict] = {}
    default = None
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = line.strip().split("|")
        if len(fields) != 4:
            raise PwrunError(f"{host}: unexpected sinfo line {line.strip()!r}")
        name, cpus, nodes, avail = fields
        if name.endswith("*"):
            name = name[:-1]
            default = name
        cores = int(digits[0]) if (digits := re.match(r"\d+", cpus)) else 0
        entry = partitions.setdefault(name, {"cores_per_node": cores, "nodes": 0, "up": False})
        entry["cores_per_node"] = min(entry["cores_per_node"], cores) or cores
        entry["nodes"] += int(nodes)
        entry["up"] = entry["up"] or avail == "up"
    if not partitions:
        raise PwrunError(f"{host}: sinfo lists no partitions")
    default = default or next(iter(partitions))
    return {
        "pwrun_scheduler": "slurm",
        "pwrun_partitions": list(partitions),
        "pwrun_default_partition": default,
        "pwrun_cores_per_node": partitions[default]["cores_per_node"],
        "pwrun_partition_info": partitions,
    }
