"""Cluster facts from Slurm's own tools, for the Parsl config renderer."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pwrun.errors import PwrunError

# What the facts role asks sinfo for: partition, CPUs per node, node count, availability,
# memory per node (MB).
SINFO_FORMAT = "%P|%c|%D|%a|%m"


@dataclass(frozen=True)
class NodeShape:
    """What one compute node of a partition offers; 0 when the facts do not say."""

    cores: int = 0
    memory_mb: int = 0


def node_shape(facts: Mapping[str, Any], partition: str | None) -> NodeShape:
    """The smallest node of `partition` (None: the default one) by the cluster facts."""
    info = facts.get("pwrun_partition_info") or {}
    entry = info.get(partition or facts.get("pwrun_default_partition") or "") or {}
    return NodeShape(int(entry.get("cores_per_node", 0)), int(entry.get("memory_mb", 0)))


def _leading_int(text: str) -> int:
    """sinfo's number ("2", or "4+" when nodes differ: the smallest), 0 when it has none."""
    return int(digits[0]) if (digits := re.match(r"\d+", text)) else 0


def sinfo_command(sinfo: str = "sinfo") -> str:
    """The shell command whose output parse_sinfo reads (the role runs it; so does the check
    that a provisioned site still holds)."""
    return f"{shlex.quote(sinfo)} -h -o {shlex.quote(SINFO_FORMAT)}"


def parse_sinfo(output: str, host: str = "cluster", rc: int = 0, error: str = "") -> dict:
    """Facts from `sinfo -h -o SINFO_FORMAT`: partitions, default partition, and per partition
    the cores and memory of its smallest node."""
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
        if len(fields) != 5:
            raise PwrunError(f"{host}: unexpected sinfo line {line.strip()!r}")
        name, cpus, nodes, avail, memory = fields
        if name.endswith("*"):
            name = name[:-1]
            default = name
        cores, memory_mb = _leading_int(cpus), _leading_int(memory)
        entry = partitions.setdefault(
            name, {"cores_per_node": cores, "memory_mb": memory_mb, "nodes": 0, "up": False}
        )
        for key, value in (("cores_per_node", cores), ("memory_mb", memory_mb)):
            entry[key] = min(filter(None, (entry[key], value)), default=0)  # 0: unknown
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
