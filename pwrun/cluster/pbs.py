"""Cluster facts from the PBS family's own tools (PBS Pro, OpenPBS, Torque, and Slurm's Torque
wrappers), for the Parsl config renderer."""

from __future__ import annotations

import re

from pwrun.errors import PwrunError


def parse_pbsnodes(output: str) -> dict[str, dict[str, str]]:
    """`pbsnodes -a`: per node, its attributes (`state`, `np` or `resources_available.ncpus`...).

    A node is its name on a line of its own, then indented `key = value` lines; PBS Pro folds
    long values onto lines that start with a tab, which are joined back.
    """
    nodes: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    key = ""
    for line in output.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            current = nodes.setdefault(line.strip(), {})
        elif current is not None and line.startswith("\t") and key:
            current[key] += line.strip()
        elif current is not None and "=" in line:
            key, _, value = (part.strip() for part in line.partition("="))
            current[key] = value
    return nodes


def node_cpus(node: dict[str, str]) -> int:
    """A node's CPUs: Torque's `np`, PBS Pro's `resources_available.ncpus` (0 when neither)."""
    for key in ("resources_available.ncpus", "np"):
        if match := re.match(r"\d+", node.get(key, "")):
            return int(match[0])
    return 0


def parse_queues(output: str) -> dict[str, bool]:
    """`qstat -Q` (Torque's, PBS Pro's and the Slurm wrappers' table): per queue, whether it is
    enabled and started. Rows follow the line of dashes; Ena and Str are the 4th and 5th columns."""
    queues: dict[str, bool] = {}
    rows = output.splitlines()
    start = next((i + 1 for i, line in enumerate(rows) if line.startswith("---")), len(rows))
    for line in rows[start:]:
        fields = line.split()
        if len(fields) >= 5:
            queues[fields[0]] = fields[3] == "yes" and fields[4] == "yes"
    return queues


def flavour(version_output: str) -> str:
    """`qstat --version`: PBS Pro and OpenPBS print `pbs_version = ...`; anything else (Torque's
    `Version: ...`, the Slurm wrappers' usage text) is the Torque family."""
    return "pbspro" if "pbs_version" in version_output else "torque"


def parse_pbs(sections: dict[str, str], host: str = "cluster") -> dict:
    """Facts from `qstat --version`, `qstat -Q` and `pbsnodes -a`: queues (as partitions), the
    flavour, cores per node (the smallest node's)."""
    queues = parse_queues(sections.get("queues", ""))
    if not queues:
        raise PwrunError(f"{host}: qstat -Q lists no queues")
    nodes = parse_pbsnodes(sections.get("nodes", ""))
    cores = min((c for c in map(node_cpus, nodes.values()) if c), default=0)
    info = {q: {"cores_per_node": cores, "nodes": len(nodes), "up": up} for q, up in queues.items()}
    return {
        "pwrun_scheduler": "pbs",
        "pwrun_pbs_flavour": flavour(sections.get("version", "")),
        "pwrun_partitions": list(queues),
        "pwrun_default_partition": next(iter(queues)),
        "pwrun_cores_per_node": cores,
        "pwrun_partition_info": info,
    }
