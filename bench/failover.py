"""From a site's death to its first task finishing on the fallback (lab, root).

`map` runs on site-a with `fallback: [spare]` (site-b), both with the default heartbeats
(period 5 s, threshold 20 s): the detection time is the threshold plus the 5 s ssh probe, 25 s.
Mid-run, site-a's login node drops all traffic to and from the workstation (nftables); the
bench times the cut to the first result from a site-b node. Target: <= detection + 5 s = 30 s.
Usage: python bench/failover.py [--repeat N]
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

from pwrun.lab import Lab, network
from pwrun.parslcfg.executors import HEARTBEAT_THRESHOLD
from pwrun.parslcfg.failover import PROBE_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "tests" / "run" / "workflows" / "failover.py"
DETECTION = HEARTBEAT_THRESHOLD + PROBE_TIMEOUT
EXECUTORS = (
    "map:\n  site: site-a\n  max_workers_per_node: 2\n  fallback: [spare]\n"
    "spare:\n  site: site-b\n  max_workers_per_node: 2\n"
)


def once(lab: Lab, home: Path) -> float:
    """One run: seconds from the cut to the first task done on site-b."""
    site_a, site_b = lab.sites
    fallback_hosts = {node.hostname for node in site_b.computes}
    executors = home / "executors.yml"
    executors.write_text(EXECUTORS)
    env = {**os.environ, "PWRUN_HOME": str(home / "state")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pwrun.cli", "run", str(WORKFLOW), "40", "2",
         "-e", str(executors), "-i", str(lab.inventory)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=home, env=env,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    cut = None
    moved = None
    try:
        for line in proc.stdout:
            if line.startswith("done 2 ") and cut is None:
                network.cut(site_a)
                cut = time.monotonic()
            elif cut and moved is None and line.split(" on ")[-1].strip() in fallback_hosts:
                moved = time.monotonic() - cut
        if proc.wait() != 0 or moved is None:
            sys.exit(f"the run failed or never moved:\n{proc.communicate()[1][-3000:]}")
    finally:
        network.restore(site_a)
        if proc.poll() is None:
            proc.kill()
    subprocess.run([sys.executable, "-m", "pwrun.cli", "down"], env=env, cwd=home,
                   capture_output=True)  # fmt: skip
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    options = parser.parse_args()
    times = []
    with Lab.up(sites=2, compute_nodes=1) as lab:
        for _ in range(options.repeat):
            with tempfile.TemporaryDirectory(prefix="pwrun-bench-") as tmp:
                times.append(once(lab, Path(tmp)))
                print(f"site death to first task done on the fallback: {times[-1]:.1f} s",
                      flush=True)  # fmt: skip
    median = statistics.median(times)
    target = DETECTION + 5
    print(f"median of {len(times)}: {median:.1f} s; detection time {DETECTION:g} s (heartbeat "
          f"threshold {HEARTBEAT_THRESHOLD} s + ssh probe {PROBE_TIMEOUT:g} s); target <= "
          f"{target:g} s: {'ok' if median <= target else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
