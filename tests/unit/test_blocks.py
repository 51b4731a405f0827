"""What a cluster label's blocks ask Slurm for: its fields, else defaults from node facts."""

from __future__ import annotations

from typing import Any

import pytest
from parsl.launchers import SimpleLauncher, SingleNodeLauncher, SrunLauncher

from pwrun.cluster.slurm import NodeShape
from pwrun.parslcfg.blocks import Blocks, plan_blocks, slurm_options
from pwrun.parslcfg.executors import ClusterSpec, SlurmSpec, executor_spec

NODE = NodeShape(cores=8, memory_mb=32_000)


def facts(node: NodeShape) -> dict[str, Any]:
    """Cluster facts whose default partition has nodes of this shape."""
    info = {"cores_per_node": node.cores, "memory_mb": node.memory_mb}
    return {"pwrun_default_partition": "p", "pwrun_partition_info": {"p": info}}


def plan(node: NodeShape = NODE, **fields: Any) -> Blocks:
    spec = executor_spec({"site": "a", **fields})
    assert isinstance(spec, ClusterSpec)
    return plan_blocks(spec, facts(node))


@pytest.mark.parametrize(
    ("fields", "cores", "workers", "memory"),
    [
        ({}, 8, 8, 31),  # site only: the whole node, one worker per core, all its memory
        ({"cores_per_worker": 3}, 8, 2, 31),
        ({"max_workers_per_node": 2}, 2, 2, 7),  # the cores its workers use, memory in share
        ({"max_workers_per_node": 2, "cores_per_worker": 1.5}, 3, 2, 11),
        ({"max_workers_per_node": 100}, 8, 100, 31),  # more workers than cores: the node's
        ({"cores_per_node": 4}, 4, 4, 15),
        ({"cores_per_node": 4, "mem_per_node": 2, "max_workers_per_node": 1}, 4, 1, 2),
    ],
)
def test_defaults_fill_the_node(
    fields: dict[str, Any], cores: int, workers: int, memory: int
) -> None:
    blocks = plan(**fields)
    assert (blocks.cores_per_node, blocks.max_workers_per_node, blocks.mem_per_node) == (
        cores, workers, memory,
    )  # fmt: skip


def test_unknown_node_leaves_every_size_to_slurm_and_parsl() -> None:
    assert plan(NodeShape()) == Blocks(None, None, None, None, "single_node")
    assert plan(NodeShape(cores=2)).mem_per_node is None
    assert plan(NodeShape(cores=2, memory_mb=900)).mem_per_node is None  # under 1 GB: none


def test_launcher_is_srun_for_a_multi_node_block_unless_given() -> None:
    assert isinstance(plan(nodes_per_block=2).parsl_launcher(), SrunLauncher)
    assert isinstance(plan().parsl_launcher(), SingleNodeLauncher)
    assert plan(nodes_per_block=2, launcher="single_node").launcher == "single_node"
    assert plan(launcher="mpiexec").launcher == "mpiexec"


def test_gpus_pin_one_per_worker() -> None:
    blocks = plan(gpus_per_node=4)
    assert blocks.accelerators() == ["0", "1", "2", "3"] and plan().accelerators() == []


def test_pbs_blocks_ask_the_cores_of_their_workers_and_no_memory() -> None:
    blocks = plan(provider="torque", max_workers_per_node=3)
    assert blocks == Blocks(3, None, None, 3, "single_node")


def test_mpi_takes_whole_nodes_and_the_simple_launcher() -> None:
    blocks = plan(kind="mpi", nodes_per_block=4, max_workers_per_block=2)
    assert (blocks.cores_per_node, blocks.max_workers_per_node, blocks.mem_per_node) == (
        8,
        None,
        31,
    )
    assert isinstance(blocks.parsl_launcher(), SimpleLauncher)


def test_slurm_options_are_parsls_own_arguments() -> None:
    spec = executor_spec({
        "site": "a", "partition": "p", "account": "acct", "qos": "high", "constraint": "a&b",
        "exclusive": True, "gpus_per_node": 2,
    })  # fmt: skip
    assert isinstance(spec, SlurmSpec)
    options = slurm_options(spec, plan_blocks(spec, facts(NODE)))
    launcher = options.pop("launcher")
    assert isinstance(launcher, SingleNodeLauncher)
    assert options == {
        "partition": "p", "account": "acct", "qos": "high", "constraint": "a&b",
        "exclusive": True, "cores_per_node": 8, "mem_per_node": 31, "gpus_per_node": 2,
    }  # fmt: skip
