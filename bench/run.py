"""pwrun run on warm lab sites: overhead per stage (1, 2 and 4 sites) and task throughput.

Throughput is a ratio against Parsl's local HTEX (pwrun's embedded site) measured in the same
script: 2,000 no-op tasks each. Needs root (the lab). Usage: python bench/run.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from pwrun.lab import Lab

HERE = Path(__file__).resolve().parent
NOOP = HERE / "workflows" / "noop.py"
STAGES = ("inventory", "provision", "tunnels", "first result", "teardown")
TARGETS = {1: None, 2: 3.0, 4: 3.5}  # seconds, everything but the workflow (warm sites)


def executors_file(directory: Path, sites: int) -> Path:
    """One label per site, on its compute partition."""
    path = directory / f"{sites}_sites.executors.yml"
    path.write_text("".join(
        f"site_{name}:\n  site: site-{name}\n  partition: compute\n  max_workers_per_node: 2\n"
        for name in "abcd"[:sites]
    ))  # fmt: skip
    return path


def pwrun_run(home: Path, tasks: int, executors: Path | None, inventory: Path | None) -> dict:
    """One `pwrun run` of the no-op workflow; its stage timings and printed numbers."""
    argv = [sys.executable, "-m", "pwrun.cli", "run", str(NOOP), str(tasks)]
    if executors:
        argv += ["-e", str(executors), "-i", str(inventory)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=home,
                          env={**os.environ, "PWRUN_HOME": str(home)})  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"pwrun run failed:\n{proc.stderr[-3000:]}")
    result = {
        "first result": float(re.search(r"first result ([\d.]+) s", proc.stdout)[1]),
        "of which parsl.load": float(re.search(r"loaded ([\d.]+) s", proc.stdout)[1]),
    }
    if tasks:
        result["throughput"] = float(re.search(r"throughput ([\d.]+)", proc.stdout)[1])
    runs = sorted((home / "runs").glob("*/run.json"))
    if executors and runs:
        result |= json.loads(runs[-1].read_text())["timings"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pwrun-bench-") as tmp, Lab.up(sites=4) as lab:
        home = Path(tmp)
        executors = {sites: executors_file(home, sites) for sites in TARGETS}
        print(
            "cold (first provisioning of 4 sites):", pwrun_run(home, 0, executors[4], lab.inventory)
        )
        for sites, target in TARGETS.items():
            samples = [
                pwrun_run(home, 0, executors[sites], lab.inventory) for _ in range(args.repeat)
            ]
            medians = {s: statistics.median(x[s] for x in samples) for s in STAGES}
            overhead = sum(medians.values())
            own = overhead - medians["first result"]  # what pwrun itself does
            load = statistics.median(x["of which parsl.load"] for x in samples)
            goal = f" (target <= {target} s)" if target else ""
            print(f"warm, {sites} site(s), median of {args.repeat}: "
                  + " · ".join(f"{k} {v:.2f}s" for k, v in medians.items())
                  + f" (of which parsl.load {load:.2f}s) | all but the workflow {overhead:.2f}s"
                  f"{goal}; pwrun's own stages {own:.2f}s, teardown {medians['teardown']:.2f}s "
                  "(target < 2 s)")  # fmt: skip
        local, remote = [], []
        for _ in range(args.repeat):
            local.append(pwrun_run(home, args.tasks, None, None)["throughput"])
            remote.append(pwrun_run(home, args.tasks, executors[1], lab.inventory)["throughput"])
        ratio = statistics.median(remote) / statistics.median(local)
        print(f"throughput, {args.tasks} no-op tasks, median of {args.repeat}: "
              f"local HTEX {statistics.median(local):.0f}/s, one lab site through pwrun "
              f"{statistics.median(remote):.0f}/s, ratio {ratio:.2f} (target >= 0.8)")  # fmt: skip


if __name__ == "__main__":
    main()
