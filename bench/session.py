"""pwrun.session() vs `pwrun run` on warm lab sites: time to the first result from every site,
from the process's start (target: the session within 10 % of `pwrun run`). Needs root (the lab).

Both run noop.py's first_results: `pwrun run noop.py 0` and a script that opens
`pwrun.session()` around it; they alternate, after one cold run that provisions the sites.
Usage: python bench/session.py [--sites 2] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import NOOP, executors_file  # bench/run.py, beside this script

from pwrun.lab import Lab

SESSION = Path(__file__).resolve().parent / "workflows" / "session_noop.py"


def first_result(argv: list[str], home: Path) -> float:
    """Seconds from starting `argv` to its first result from every site."""
    started = time.time()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=home,
                          env={**os.environ, "PWRUN_HOME": str(home)})  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"{argv[1]} failed:\n{proc.stderr[-3000:]}")
    return float(re.search(r"first result at ([\d.]+)", proc.stdout)[1]) - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pwrun-bench-") as tmp, Lab.up(sites=args.sites) as lab:
        home = Path(tmp)
        executors = executors_file(home, args.sites)
        run = [sys.executable, "-m", "pwrun.cli", "run", str(NOOP), "0",
               "-e", str(executors), "-i", str(lab.inventory)]  # fmt: skip
        session = [sys.executable, str(SESSION), str(executors), str(lab.inventory)]
        print(f"cold (provisioning {args.sites} sites): {first_result(run, home):.2f} s")
        runs, sessions = [], []
        for _ in range(args.repeat):
            runs.append(first_result(run, home))
            sessions.append(first_result(session, home))
        ratio = statistics.median(sessions) / statistics.median(runs)
        print(f"warm, {args.sites} site(s), median of {args.repeat}, time to the first result "
              f"from every site: pwrun run {statistics.median(runs):.2f} s "
              f"({', '.join(f'{x:.2f}' for x in runs)}), pwrun.session() "
              f"{statistics.median(sessions):.2f} s ({', '.join(f'{x:.2f}' for x in sessions)}), "
              f"ratio {ratio:.2f} (target <= 1.10)")  # fmt: skip


if __name__ == "__main__":
    main()
