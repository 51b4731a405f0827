"""A site's network: its namespaces, veths and bridge, and the nftables rules that isolate it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pwrun.lab import render
from pwrun.lab.model import NFT_TABLE_PREFIX, Site
from pwrun.lab.processes import run

LAB_TABLE = re.compile(rf"table inet ({NFT_TABLE_PREFIX}\d+)")


def netns_names() -> set[str]:
    """Every network namespace on this machine, the lab's and others'."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def nft_tables() -> list[str]:
    """Every nftables table on this machine, as ``nft list tables`` prints them."""
    return [line.strip() for line in run("nft", "list", "tables").splitlines()]


def lab_tables() -> list[str]:
    """Names of the nftables tables of every lab on this machine."""
    return [m.group(1) for line in nft_tables() if (m := LAB_TABLE.fullmatch(line))]


def create(site: Site) -> None:
    """Namespaces, links, firewalls: workstation -> login by ssh only; computes -> login only."""
    login = site.login.netns
    run("ip", "netns", "add", login)
    run("ip", "link", "add", site.outer_veth, "type", "veth", "peer", "name", "eth0",
        "netns", login)  # fmt: skip
    run("ip", "addr", "add", f"{site.workstation_address}/24", "dev", site.outer_veth)
    run("ip", "link", "set", site.outer_veth, "up")
    _ip_batch(
        login,
        "link set lo up",
        f"addr add {site.address}/24 dev eth0",
        "link set eth0 up",
        "link add br0 type bridge",
        f"addr add {site.internal_address}/24 dev br0",
        "link set br0 up",
    )
    run("ip", "netns", "exec", login, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
    for k, node in enumerate(site.computes, start=1):
        run("ip", "netns", "add", node.netns)
        run("ip", "-n", login, "link", "add", f"c{k}", "type", "veth", "peer", "name", "eth0",
            "netns", node.netns)  # fmt: skip
        run("ip", "-n", login, "link", "set", f"c{k}", "master", "br0", "up")
        _ip_batch(node.netns, "link set lo up", f"addr add {node.address}/24 dev eth0",
                  "link set eth0 up")  # fmt: skip
    run("ip", "netns", "exec", login, "nft", "-f", "-", input=render.login_firewall())
    run("nft", "-f", "-", input=render.workstation_firewall(site))


def remove(site: Site) -> None:
    """Delete a site's namespaces (and so its links), its table and its veth; absent is fine."""
    for node in site.nodes:
        subprocess.run(["ip", "netns", "del", node.netns], capture_output=True)
    subprocess.run(["nft", "delete", "table", "inet", site.nft_table], capture_output=True)
    subprocess.run(["ip", "link", "del", site.outer_veth], capture_output=True)


def leftovers(site: Site, namespaces: set[str], tables: list[str]) -> list[str]:
    """What of a site's network still exists, given the machine's namespaces and tables."""
    found = [f"network namespace {n.netns}" for n in site.nodes if n.netns in namespaces]
    if f"table inet {site.nft_table}" in tables:
        found.append(f"nftables table {site.nft_table}")
    if Path("/sys/class/net", site.outer_veth).exists():
        found.append(f"interface {site.outer_veth}")
    return found


def _ip_batch(netns: str, *commands: str) -> None:
    run("ip", "-n", netns, "-batch", "-", input="".join(f"{c}\n" for c in commands))


CUT_TABLE = "pwrun_cut"
CUT_RULES = f"""table inet {CUT_TABLE} {{
  chain in {{ type filter hook input priority -200; iifname "eth0" drop; }}
  chain out {{ type filter hook output priority -200; oifname "eth0" drop; }}
}}
"""


def cut(site: Site) -> None:
    """Cut `site` off: its login node drops everything to and from the workstation (as a WAN
    link that goes dark: no reset, no answer), while its compute nodes still reach it."""
    run("ip", "netns", "exec", site.login.netns, "nft", "-f", "-", input=CUT_RULES)


def restore(site: Site) -> None:
    """Undo `cut` (absent is fine)."""
    subprocess.run(["ip", "netns", "exec", site.login.netns, "nft", "delete", "table", "inet",
                    CUT_TABLE], capture_output=True)  # fmt: skip
