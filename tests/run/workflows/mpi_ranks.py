"""`mpi_ranks.py LABEL NODES`: one MPI app on LABEL across NODES nodes, one rank per node,
launched with $PARSL_MPI_PREFIX; prints each rank's host."""

import sys

from parsl import python_app


def ranks(parsl_resource_specification: dict | None = None) -> str:
    import os
    import subprocess

    command = f"{os.environ['PARSL_MPI_PREFIX']} hostname"
    return subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout


if __name__ == "__main__":
    label, nodes = sys.argv[1], int(sys.argv[2])
    spec = {"num_nodes": nodes, "ranks_per_node": 1, "num_ranks": nodes}
    print(python_app(ranks, executors=[label])(parsl_resource_specification=spec).result(), end="")
