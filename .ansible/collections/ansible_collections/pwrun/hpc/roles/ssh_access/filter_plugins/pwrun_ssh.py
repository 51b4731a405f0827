"""Filters over pwrun.cluster.hostkeys: where a host's keys are pinned, and which keys."""

from __future__ import annotations


def pwrun_known_hosts_file(ssh_args: str) -> str:
    from pwrun.cluster.hostkeys import known_hosts_file_from_args

    return known_hosts_file_from_args(ssh_args) or ""


def pwrun_pinned_keys(host: str, known_hosts: str, port: int | None = None) -> list[str]:
    from pwrun.cluster.hostkeys import pinned_keys

    return pinned_keys(host, known_hosts or None, int(port) if port else None)


class FilterModule:
    def filters(self) -> dict:
        return {
            "pwrun_known_hosts_file": pwrun_known_hosts_file,
            "pwrun_pinned_keys": pwrun_pinned_keys,
        }
