"""Data across sites, on a lab site: transfer speed against scp, the cost of a file per task,
and one shared input sent once.

Needs root (the lab). Usage: python bench/data.py [--repeat N] [--tasks N]
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
from collections.abc import Callable
from pathlib import Path

from pwrun.lab import Lab
from pwrun.provision.inventory import read_inventory, ssh_target
from pwrun.transport.files import Fetch, SiteFiles
from pwrun.transport.ssh import SSHTarget

HERE = Path(__file__).resolve().parent
WORKFLOW = HERE / "workflows" / "data.py"
BIG = 200 << 20


def scp_argv(target: SSHTarget) -> list[str]:
    """scp with the ssh options pwrun uses for `target` (its shared connection included)."""
    options = target.argv()[1:-2]  # between "ssh" and "-- destination"
    return ["scp", "-q", *("-P" if word == "-p" else word for word in options)]


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def round_trip(target: SSHTarget, home: str, work: Path, n: int) -> tuple[float, float]:
    """Seconds for a new 200 MB file to the site and back: pwrun's files, then scp."""
    source = work / f"big{n}"
    source.write_bytes(os.urandom(BIG))
    files = SiteFiles("site-a", target, f"{home}/bench-data/{n}/files")
    back = work / f"back{n}"

    def through_pwrun() -> None:
        (site_path,) = files.put([source]).result()
        files.get([Fetch(site_path, back)]).result()

    pwrun = timed(through_pwrun)
    assert back.read_bytes() == source.read_bytes() and files.bytes_sent == BIG
    remote = f"{target.destination}:{home}/bench-data/{n}/scp.bin"

    def through_scp() -> None:
        subprocess.run([*scp_argv(target), str(source), remote], check=True)
        subprocess.run([*scp_argv(target), remote, str(back)], check=True)

    scp = timed(through_scp)
    target.run(f"rm -rf -- {home}/bench-data")
    for path in (source, back):
        path.unlink()
    return pwrun, scp


def per_task(lab: Lab, work: Path, tasks: int) -> tuple[float, float, int]:
    """`pwrun run` of the workflow: seconds without and with a file per task, bytes sent."""
    executors = work / "executors.yml"
    executors.write_text("site:\n  site: site-a\n  partition: compute\n  max_workers_per_node: 4\n")
    inputs = work / "inputs"
    inputs.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pwrun.cli", "run", str(WORKFLOW), str(tasks), str(inputs),
         "-e", str(executors), "-i", str(lab.inventory)],
        capture_output=True, text=True, cwd=work, env={**os.environ, "PWRUN_HOME": str(work)},
    )  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"pwrun run failed:\n{proc.stderr[-3000:]}")
    times = re.search(r"plain ([\d.]+) s, with files ([\d.]+)", proc.stdout)
    sent = re.search(r"shared sent (\d+) bytes", proc.stdout)
    assert times and sent, proc.stdout
    return float(times[1]), float(times[2]), int(sent[1])


def measure(lab: Lab, work: Path, repeat: int, tasks: int) -> None:
    """Each measure `repeat` times; print the medians and ratios."""
    target = ssh_target("site-a", read_inventory(lab.inventory).hosts["site-a"])
    home = target.run("echo $HOME").stdout.strip()
    samples = [round_trip(target, home, work, n) for n in range(repeat)]
    pwrun, scp = (statistics.median(s[i] for s in samples) for i in range(2))
    print(f"200 MB to a lab site and back, median of {repeat}: pwrun {pwrun:.2f} s, "
          f"scp {scp:.2f} s, ratio scp/pwrun {scp / pwrun:.2f} (target >= 0.9)")  # fmt: skip
    runs = [per_task(lab, work, tasks) for _ in range(repeat)]
    plain, with_files = (statistics.median(r[i] for r in runs) for i in range(2))
    added = (with_files - plain) / tasks * 1000
    print(f"{tasks} tasks, median of {repeat}: without files {plain:.2f} s, "
          f"with a 1 KB input each {with_files:.2f} s, added {added:.1f} ms per file "
          "(target <= 20 ms)")  # fmt: skip
    sent = {r[2] for r in runs}
    assert sent == {50 << 20}, f"the shared input was sent as {sent} bytes"
    print("50 MB input shared by 100 tasks on one site: sent once (52428800 bytes)")
    target.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with Lab.up(sites=1) as lab, tempfile.TemporaryDirectory(prefix="pwrun-bench-") as tmp:
        measure(lab, Path(tmp), args.repeat, args.tasks)


if __name__ == "__main__":
    main()
