"""pwrun run on warm lab sites: overhead per stage (1 and 2 sites) and task throughput.

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
EXECUTORS = {
    1: HERE / "workflows" / "one_site.executors.yml",
    2: HERE / "workflows" / "two_sites.executors.yml",
}
STAGES = ("inventory", "provision", "tunnels", "first result", "teardown")


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
    with tempfile.TemporaryDirectory(prefix="pwrun-bench-") as tmp, Lab.up(sites=2) as lab:
        home = Path(tmp)
        print(
            "cold (first provisioning of 2 sites):", pwrun_run(home, 0, EXECUTORS[2], lab.inventory)
        )
        for sites in (1, 2):
            samples = [
                pwrun_run(home, 0, EXECUTORS[sites], lab.inventory) for _ in range(args.repeat)
            ]
            medians = {s: statistics.median(x[s] for x in samples) for s in STAGES}
            overhead = sum(v for k, v in medians.items())
            print(f"warm, {sites} site(s), median of {args.repeat}: "
                  + " · ".join(f"{k} {v:.2f}s" for k, v in medians.items())
                  + f" | all but the workflow {overhead:.2f}s (target < 10 s), "
                  f"teardown {medians['teardown']:.2f}s (target < 2 s)")  # fmt: skip
        local, remote = [], []
        for _ in range(args.repeat):
            local.append(pwrun_run(home, args.tasks, None, None)["throughput"])
            remote.append(pwrun_run(home, args.tasks, EXECUTORS[1], lab.inventory)["throughput"])
        ratio = statistics.median(remote) / statistics.median(local)
        print(f"throughput, {args.tasks} no-op tasks, median of {args.repeat}: "
              f"local HTEX {statistics.median(local):.0f}/s, one lab site through pwrun "
              f"{statistics.median(remote):.0f}/s, ratio {ratio:.2f} (target >= 0.8)")  # fmt: skip


if __name__ == "__main__":
    main()
