"""A tunnel's death mid-run: the time from killing its ssh to the next task result (target
<= 5 s, median of --repeat kills), against the usual gap between results in the same run.

One lab site, a steady stream of short tasks (tests/run/workflows/steady.py); each kill comes
just after a result, while the next tasks run on the workers. Needs root (the lab).
Usage: python bench/tunnel.py [--repeat 5] [--task-seconds 0.5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pwrun.lab import Lab

ROOT = Path(__file__).resolve().parents[1]
STEADY = ROOT / "tests" / "run" / "workflows" / "steady.py"
TARGET = 5.0  # seconds


def measure(lab: Lab, home: Path, repeat: int, task_seconds: float) -> tuple[list, list]:
    """Gaps between results before any kill, and the time from each kill to the next result."""
    executors = home / "executors.yml"
    executors.write_text("map:\n  site: site-a\n  max_workers_per_node: 2\n")
    tasks = int((repeat + 2) * 8 / task_seconds) + 20
    proc = subprocess.Popen(
        [sys.executable, "-m", "pwrun.cli", "run", str(STEADY), str(tasks), str(task_seconds),
         "-e", str(executors), "-i", str(lab.inventory)],
        stdout=subprocess.PIPE, text=True, cwd=home, start_new_session=True,
        env={**os.environ, "PWRUN_HOME": str(home / "state")},
    )  # fmt: skip
    assert proc.stdout is not None
    lines = (line for line in proc.stdout if line.startswith("result"))
    arrivals = [time.monotonic() for _ in itertools.islice(lines, 10)]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    deaths = []
    for _ in range(repeat):
        time.sleep(0.1)  # just after a result: the next tasks are on the workers
        record = next((home / "state" / "tunnels").glob("*.json"))
        killed = time.time()  # wall clock: each result line carries its arrival time
        os.kill(json.loads(record.read_text())["process"]["pid"], signal.SIGKILL)
        # the first result that arrived after the kill (lines already in the pipe do not count)
        arrived = next(t for line in lines if (t := float(line.split()[-1])) > killed)
        deaths.append(arrived - killed)
        for _ in itertools.islice(lines, 4):  # let it settle
            pass
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    return gaps, deaths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--task-seconds", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pwrun-bench-") as tmp, Lab.up(sites=1) as lab:
        gaps, deaths = measure(lab, Path(tmp), args.repeat, args.task_seconds)
    usual, median = statistics.median(gaps), statistics.median(deaths)
    print(f"usual gap between results: median {usual:.2f} s")
    print("tunnel death to next result: " + ", ".join(f"{d:.2f}" for d in deaths) + " s")
    print(
        f"median {median:.2f} s (target <= {TARGET} s), {median / usual:.1f}x the usual gap: "
        + ("ok" if median <= TARGET else "MISSED")
    )
