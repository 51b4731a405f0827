"""Lab up-then-down time for 1, 2 and 4 sites, against one ssh round trip as the baseline.

Needs root. Usage: python bench/lab.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from pwrun.lab import Lab


def up_down(sites: int) -> tuple[float, float, float]:
    """Seconds to bring `sites` sites up (usable: ssh and idle Slurm nodes), one ssh, down."""
    start = time.perf_counter()
    lab = Lab.up(sites=sites)
    up = time.perf_counter() - start
    start = time.perf_counter()
    assert lab.ssh("site-a", "true").returncode == 0
    ssh = time.perf_counter() - start
    start = time.perf_counter()
    lab.down()
    down = time.perf_counter() - start
    assert lab.leftovers() == []
    return up, down, ssh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for sites in (1, 2, 4):
        samples = [up_down(sites) for _ in range(args.repeat)]
        up, down, ssh = (statistics.median(s[i] for s in samples) for i in range(3))
        print(f"{sites} site(s), median of {args.repeat}: up {up:.2f} s, down {down:.2f} s, "
              f"up+down {up + down:.2f} s = {(up + down) / ssh:.0f}x one ssh round trip "
              f"({ssh * 1000:.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
