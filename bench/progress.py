"""What following a run's tasks costs: 2,000 no-op tasks on the embedded local site, plain
Parsl (the same HTEX config, `python noop.py`: no pwrun, no tracking) against `pwrun run` with
--report, --junit and its progress display, plain lines (stderr a pipe) and the live table
(stderr a terminal). Runs interleaved, medians; target: each adds <= 3 % to the tasks' time.

Usage: python bench/progress.py [--repeat 5] [--tasks 2000]
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOOP = HERE / "workflows" / "noop.py"
TARGET = 0.03
# noop.py as plain Parsl runs it, then its DFK cleaned up (outside `pwrun run` nothing else
# would stop its interchange)
BASELINE = ("import runpy, sys, parsl; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__'); parsl.dfk().cleanup()")  # fmt: skip


def on_terminal(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run `argv` with a pseudo-terminal as stdin, stdout and stderr; all it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    if proc.wait() != 0:
        sys.exit(f"{argv} failed:\n{b''.join(chunks).decode(errors='replace')[-3000:]}")
    return b"".join(chunks).decode(errors="replace")


def seconds(mode: str, tasks: int, home: Path) -> float:
    """The time the workflow took for its tasks (it prints it), in one of the modes."""
    env = {**os.environ, "PWRUN_HOME": str(home / "state"), "COLUMNS": "120"}
    if mode == "plain parsl":
        argv = [sys.executable, "-c", BASELINE, str(NOOP), str(tasks)]
    else:
        argv = [sys.executable, "-m", "pwrun.cli", "run", "--report", str(home / "r.json"),
                "--junit", str(home / "j.xml"), "--progress-interval", "1", str(NOOP),
                str(tasks)]  # fmt: skip
    if mode == "pwrun, live table":
        output = on_terminal(argv, env, home)
    else:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=home)
        if proc.returncode != 0:
            sys.exit(f"{argv} failed:\n{proc.stderr[-3000:]}")
        output = proc.stdout
        if mode == "pwrun, plain lines" and "progress " not in proc.stderr:
            sys.exit("no progress line was printed")
    return float(re.search(r"\d+ tasks in ([\d.]+) s", output)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    modes = ("plain parsl", "pwrun, plain lines", "pwrun, live table")
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="pwrun-bench-") as tmp:
        for _ in range(args.repeat):
            for mode in modes:
                samples[mode].append(seconds(mode, args.tasks, Path(tmp)))
    print(f"{args.tasks} no-op tasks, {args.repeat} runs each, interleaved (best: least "
          "disturbed by other load on the machine):")  # fmt: skip
    for summary in (statistics.median, min):
        base = summary(samples[modes[0]])
        for mode in modes:
            value = summary(samples[mode])
            added = value / base - 1
            met = "met" if added <= TARGET else "MISSED"
            verdict = "" if mode == modes[0] else f", adds {added:+.1%} (<= {TARGET:.0%}: {met})"
            print(f"  {summary.__name__.replace('min', 'best')} {mode}: {value:.2f} s "
                  f"({args.tasks / value:.0f} tasks/s){verdict}")  # fmt: skip
    for mode in modes:
        print(f"  runs, {mode}: " + " ".join(f"{s:.2f}" for s in samples[mode]))


if __name__ == "__main__":
    main()
