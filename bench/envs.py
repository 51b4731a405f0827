#!/usr/bin/env python3
"""Warm provisioning with per-label envs: 2 lab sites, each with two labels of different
package sets (four envs built from local wheels), against one label per site (the site's own
env), measured in the same run and in turns.

Prints the median of `pwrun run`'s provision stage (the fast path on warm sites: one probe per
site, its label envs' markers included), for both, and the difference; the target is <= 0.5 s.
Needs root (the lab). Usage: python bench/envs.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from run import pwrun_run  # bench/run.py: one `pwrun run` of the no-op workflow, its timings

from pwrun.lab import Lab

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from tests.run.wheels import write_wheel  # noqa: E402  (the tests' tiny local wheels)

TARGET = 0.5  # seconds more, warm, for two label envs per site
STAGES = ("inventory", "provision", "tunnels")


def executors_files(directory: Path) -> dict[str, Path]:
    """One label per site (the site's env), and two labels per site with their own packages."""
    one = "".join(f"site_{s}:\n  site: site-{s}\n  max_workers_per_node: 1\n" for s in "ab")
    two = "".join(
        f"{s}{n}:\n  site: site-{s}\n  max_workers_per_node: 1\n"
        f"  packages: [bench-pkg-{s}{n}==1.0]\n"
        for s in "ab"
        for n in (1, 2)
    )
    files = {"one label per site": one, "two label envs per site": two}
    for name, text in files.items():
        (directory / f"{name.replace(' ', '_')}.yml").write_text(text)
    return {name: directory / f"{name.replace(' ', '_')}.yml" for name in files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm runs of each, in turns")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pwrun-bench-") as tmp:
        home = Path(tmp)
        for s in "ab":
            for n in (1, 2):
                write_wheel(home / "wheels", f"bench-pkg-{s}{n}", "1.0", f"VALUE = '{s}{n}'\n")
        links = os.environ.get("PIP_FIND_LINKS", "")
        os.environ["PIP_FIND_LINKS"] = f"{home / 'wheels'} {links}".strip()
        with Lab.up(sites=2, compute_nodes=1, directory=home / "lab") as lab:
            files = executors_files(home)
            for path in files.values():  # cold: builds the envs and records the sites
                pwrun_run(home, 0, path, lab.inventory)
            samples: dict[str, list[dict]] = {name: [] for name in files}
            for _ in range(args.repeat):
                for name, path in files.items():
                    samples[name].append(pwrun_run(home, 0, path, lab.inventory))
    medians = {
        name: {stage: statistics.median(run[stage] for run in runs) for stage in STAGES}
        for name, runs in samples.items()
    }
    for name, stages in medians.items():
        print(
            f"warm, 2 sites, {name:<24} (median of {args.repeat}): "
            + " · ".join(f"{stage} {seconds:.2f}s" for stage, seconds in stages.items())
        )
    base, envs = (stages["provision"] for stages in medians.values())
    print(
        f"provision with two label envs per site adds {envs - base:+.2f} s "
        f"({envs:.2f} s vs {base:.2f} s; target <= {TARGET} s)"
    )


if __name__ == "__main__":
    main()
