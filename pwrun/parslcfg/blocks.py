"""What each block of a cluster label asks its scheduler for, and how it starts its workers.

The executors file's resource fields, with defaults from the cluster facts (the smallest node of
the label's partition): a block takes the cores its workers use, one worker per core
(`cores_per_worker` each) and memory in proportion to its cores. Any provider over
`RemoteSchedulerMixin` takes these values (Slurm's: `slurm_options`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from parsl.launchers import MpiExecLauncher, SimpleLauncher, SingleNodeLauncher, SrunLauncher
from parsl.launchers.base import Launcher

from pwrun.cluster.slurm import node_shape
from pwrun.parslcfg.executors import ClusterSpec, MpiSpec, PbsSpec, SlurmSpec

LAUNCHERS: dict[str, Callable[[], Launcher]] = {
    "srun": SrunLauncher,
    "single_node": SingleNodeLauncher,
    "mpiexec": MpiExecLauncher,
    "simple": SimpleLauncher,
}


@dataclass(frozen=True)
class Blocks:
    """One block's request per node (None: the scheduler's default) and its worker layout."""

    cores_per_node: int | None
    mem_per_node: int | None  # GB
    gpus_per_node: int | None
    max_workers_per_node: int | None  # None: Parsl's default (MPI: its pool's own count)
    launcher: str

    def parsl_launcher(self) -> Launcher:
        return LAUNCHERS[self.launcher]()

    def accelerators(self) -> list[str]:
        """HTEX's available_accelerators: one GPU per worker, pinned by Parsl."""
        return [str(n) for n in range(self.gpus_per_node or 0)]


def plan_blocks(spec: ClusterSpec, facts: Mapping[str, Any]) -> Blocks:
    """`spec`'s fields, the rest filled in from the cluster `facts`' node of its partition
    (PBS: its queue; what they do not know is left to the scheduler). PBS labels ask cores
    only (Torque's `ppn`, PBS Pro's `ncpus`): memory and GPUs are `select_options`' to say.

    Cores: `cores_per_node`, else as many as the workers use (`max_workers_per_node` x
    `cores_per_worker`, rounded up, at most the node's), else the node's (MPI: always the
    node's). Workers: `max_workers_per_node`, else one per `cores_per_worker` of those cores.
    Memory: `mem_per_node`, else the node's share for those cores (whole GB, none below 1 GB).
    """
    if not isinstance(spec, SlurmSpec | PbsSpec):
        return Blocks(None, None, None, spec.max_workers_per_node, "single_node")
    node = node_shape(facts, spec.partition if isinstance(spec, SlurmSpec) else spec.queue)
    cores = spec.cores_per_node
    if cores is None and node.cores:
        wanted = spec.max_workers_per_node
        if wanted is None or isinstance(spec, MpiSpec):
            cores = node.cores
        else:
            cores = min(node.cores, math.ceil(wanted * spec.cores_per_worker))
    workers = spec.max_workers_per_node
    if workers is None and cores and not isinstance(spec, MpiSpec):
        workers = max(1, math.floor(cores / spec.cores_per_worker))
    if isinstance(spec, PbsSpec):  # PBS knows no node memory in its facts: the server decides
        return Blocks(cores, None, None, workers, spec.launcher_name())
    memory = spec.mem_per_node
    if memory is None and cores and node.cores and node.memory_mb:
        memory = math.floor(node.memory_mb * min(cores, node.cores) / node.cores / 1024) or None
    return Blocks(cores, memory, spec.gpus_per_node, workers, spec.launcher_name())


def slurm_options(spec: SlurmSpec, blocks: Blocks) -> dict[str, Any]:
    """Parsl SlurmProvider's arguments for `spec`'s blocks (Parsl writes the #SBATCH lines)."""
    return {
        "partition": spec.partition,
        "account": spec.account,
        "qos": spec.qos,
        "constraint": spec.constraint,
        "exclusive": spec.exclusive,
        "cores_per_node": blocks.cores_per_node,
        "mem_per_node": blocks.mem_per_node,
        "gpus_per_node": blocks.gpus_per_node,
        "launcher": blocks.parsl_launcher(),
    }
