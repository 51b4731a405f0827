#!/usr/bin/env python3
"""Converge times of site.yml on lab sites: cold (fresh site, fresh workstation cache, env from
the wheelhouse), warm (already converged) for one site, and warm for four sites in one run.

Prints the times and the ratio warm(4 sites) / warm(1 site); the target is <= 1.5 (clusters
converge in parallel). Needs root (the lab). Usage: python bench/converge.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pwrun.lab import Lab
from pwrun.transport import tunnel

PROJECT = Path(__file__).resolve().parents[1]
SITES = 4


def converge(inventory: Path, limit: str) -> float:
    """Seconds one `ansible-playbook site.yml` takes; exits if any cluster fails."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), "site.yml", "-e", f"pwrun_clusters={limit}"],
        cwd=PROJECT, capture_output=True, text=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"converge of {limit} failed:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="warm runs per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pwrun-bench-") as work:
        os.environ["PWRUN_HOME"] = str(Path(work, "pwrun-home"))
        # ssh connections of this run only (a lab address may be reused by a later lab)
        os.environ["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(Path(work, "cp"))
        with Lab.up(sites=SITES, compute_nodes=1, directory=Path(work, "lab")) as lab:
            inventory = yaml.safe_load(lab.inventory.read_text())
            inventory["all"]["children"]["lab"]["vars"] = {
                "ssh_access_config_file": f"{work}/ssh/config",
                "ssh_access_known_hosts_file": f"{work}/ssh/known_hosts",
            }
            path = Path(work, "inventory.yml")
            path.write_text(yaml.safe_dump(inventory))
            try:
                cold = converge(path, "site-a")
                warm_one = [converge(path, "site-a") for _ in range(args.repeat)]
                converge(path, "lab")  # the other sites' cold converge, not measured
                warm_all = [converge(path, "lab") for _ in range(args.repeat)]
            finally:
                for opened in tunnel.recorded():
                    opened.close()
    one, four = statistics.median(warm_one), statistics.median(warm_all)
    rows = [
        ("cold converge, 1 site (wheelhouse built and copied)", cold),
        (f"warm converge, 1 site (median of {args.repeat})", one),
        (f"warm converge, {SITES} sites in one run (median of {args.repeat})", four),
    ]
    for label, seconds in rows:
        print(f"{label:<55} {seconds:6.2f} s")
    print(f"{f'ratio warm {SITES} sites / warm 1 site (target <= 1.5)':<55} {four / one:6.2f}")


if __name__ == "__main__":
    main()
