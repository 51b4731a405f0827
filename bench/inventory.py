"""Inventory bench: 2,000 controllers over the four emulated sources (PW, EC2, GCP, Azure).

Prints, in one run on the same emulators:
  1. cold listing (every API queried) vs cached listing (raw results from the cache), through
     `ansible-inventory --list` and through the library alone; target: cached <= 20% of cold;
  2. our plugin vs amazon.aws.aws_ec2 on the same moto EC2 instances (`ansible-inventory --list`,
     no cache); target: ratio <= 1.0.

    python bench/inventory.py [--per-source 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pwrun.inventory import list_configured, load_config  # noqa: E402
from pwrun.provision.inventory import unwrap  # noqa: E402
from tests.emulators.aws_ec2 import Ec2Emulator  # noqa: E402
from tests.emulators.azure_arm import AzureArmEmulator  # noqa: E402
from tests.emulators.gcp_compute import GcpComputeEmulator  # noqa: E402
from tests.emulators.pw_api import PwApiEmulator  # noqa: E402

REGION = "us-east-1"
PROJECT, ZONE = "bench-project", "us-central1-a"
SUBSCRIPTION, GROUP = "00000000-0000-4000-8000-00000000b001", "hpc-rg"
TENANT, CLIENT_ID = "72f988bf-0000-4000-8000-00000000b002", "0c0a1b2c-0000-4000-8000-00000000b003"
AZURE_SECRET_ENV = "PWRUN_BENCH_AZURE_SECRET"
ANSIBLE_INVENTORY = str(Path(sys.executable).parent / "ansible-inventory")


def timed(action: Callable[[], object], repeat: int) -> float:
    """Median wall time of `repeat` runs of `action`, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ansible_inventory(path: Path, env: dict[str, str], *args: str, hosts: int) -> None:
    """Run `ansible-inventory -i path --list` and check it listed `hosts` hosts."""
    result = subprocess.run(
        [ANSIBLE_INVENTORY, "-i", str(path), "--list", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"ansible-inventory failed on {path.name}:\n{result.stderr}")
    found = len(json.loads(result.stdout)["_meta"]["hostvars"])
    if found != hosts:
        raise SystemExit(f"{path.name}: listed {found} hosts, expected {hosts}:\n{result.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-source", type=int, default=500, help="controllers per source")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args()
    n, repeat = args.per_source, args.repeat

    with (
        tempfile.TemporaryDirectory(prefix="pwrun-bench-") as tmp,
        PwApiEmulator() as pw,
        Ec2Emulator() as ec2,
        GcpComputeEmulator() as gcp,
        AzureArmEmulator(Path(tmp) / "tls") as azure,
    ):
        work = Path(tmp)
        print(f"seeding {n} controllers in each of pw, aws, gcp, azure ...", flush=True)
        pw.add_generated(n)
        ec2.add_instances(REGION, n, per_reservation=50)
        gcp.add_instances(PROJECT, ZONE, n, prefix="gcp")
        azure_secret = os.urandom(12).hex()
        azure.register_app(TENANT, CLIENT_ID, azure_secret)
        azure.add_vms(SUBSCRIPTION, GROUP, "eastus", n, prefix="az")

        env = {
            **os.environ,
            **ec2.environment(),
            "PW_PLATFORM_HOST": pw.url,
            "PW_API_KEY": pw.api_key,
            AZURE_SECRET_ENV: azure_secret,
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        }
        os.environ.update(env)  # the library measurements run in this process
        sources = {
            "pw": {},
            "aws": {"regions": [REGION], "endpoint_url": ec2.url},
            "gcp": {
                "projects": [PROJECT],
                "zones": [ZONE],
                "endpoint_url": gcp.url,
                "credentials_file": str(gcp.service_account_file(work)),
            },
            "azure": {
                "subscriptions": [SUBSCRIPTION],
                "auth": "client_secret",
                "tenant_id": TENANT,
                "client_id": CLIENT_ID,
                "client_secret_env": AZURE_SECRET_ENV,
                "authority_host": azure.url,
                "ca_bundle": str(azure.ca_file),
                "endpoint_url": azure.url,
            },
        }
        cache = {
            "cache": True,
            "cache_plugin": "ansible.builtin.jsonfile",
            "cache_connection": str(work / "cache"),
        }
        everything = work / "all.pwrun.yml"
        everything.write_text(json.dumps({"plugin": "pwrun", "sources": sources, **cache}))
        ours_aws = work / "aws.pwrun.yml"
        ours_aws.write_text(json.dumps({"plugin": "pwrun", "sources": {"aws": sources["aws"]}}))
        theirs_aws = work / "bench.aws_ec2.yml"
        theirs_aws.write_text(
            json.dumps(
                {
                    "plugin": "amazon.aws.aws_ec2",
                    "regions": [REGION],
                    "endpoint_url": ec2.url,
                    "filters": {"tag:pwrun-role": "controller"},
                    "hostnames": ["instance-id"],
                }
            )
        )

        config = load_config(everything)
        first = list_configured(config)
        if first.errors or len(first.clusters) != 4 * n:
            raise SystemExit(f"library listed {len(first.clusters)}: {first.errors}")
        raw = first.raw
        lib_cold = timed(lambda: list_configured(config), repeat)
        lib_cached = timed(lambda: list_configured(config, cached=raw), repeat)

        total = 4 * n
        plugin_cold = timed(
            lambda: ansible_inventory(everything, env, "--flush-cache", hosts=total), repeat
        )
        plugin_cached = timed(lambda: ansible_inventory(everything, env, hosts=total), repeat)
        # Ansible's own floor: the same hosts and variables from a static JSON file.
        listed = subprocess.run(
            [ANSIBLE_INVENTORY, "-i", str(everything), "--list"],
            cwd=REPO, env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        static = work / "static.json"
        hostvars = unwrap(json.loads(listed)["_meta"]["hostvars"])
        static.write_text(json.dumps({"all": {"hosts": hostvars}}))
        static_list = timed(lambda: ansible_inventory(static, env, hosts=total), repeat)

        ours, theirs = [], []
        for _ in range(repeat):  # interleaved, so drift on a noisy machine hits both alike
            ours.append(timed(lambda: ansible_inventory(ours_aws, env, hosts=n), 1))
            theirs.append(timed(lambda: ansible_inventory(theirs_aws, env, hosts=n), 1))
        ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)

    print(f"\n{total} controllers ({n} per source), median of {repeat} runs")
    print(f"{'':38}{'cold s':>9}{'cached s':>10}{'cached/cold':>13}  (target <= 0.20)")
    for label, cold, cached in (
        ("library (pwrun.inventory)", lib_cold, lib_cached),
        ("plugin (ansible-inventory --list)", plugin_cold, plugin_cached),
    ):
        print(f"{label:38}{cold:9.3f}{cached:10.3f}{cached / cold:13.2f}")
    print(
        f"{'static JSON file, same hosts and vars':38}{'':9}{static_list:10.3f}"
        f"  (Ansible's floor: cached plugin / static = {plugin_cached / static_list:.2f})"
    )
    print(f"\nEC2 only, {n} moto instances, ansible-inventory --list, no cache")
    print(f"{'pwrun plugin':38}{ours_median:9.3f} s")
    print(f"{'amazon.aws.aws_ec2':38}{theirs_median:9.3f} s")
    print(f"{'ratio pwrun / aws_ec2':38}{ours_median / theirs_median:9.2f}    (target <= 1.00)")


if __name__ == "__main__":
    main()
