"""Filters over pwrun.cluster.slurm: the sinfo command line, and its output -> cluster facts."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def pwrun_sinfo_facts(result: dict, host: str = "cluster") -> dict:
    """Facts from the registered result of the sinfo command; a failed sinfo fails clearly."""
    from pwrun.cluster.slurm import parse_sinfo
    from pwrun.errors import PwrunError

    error = result.get("stderr") or result.get("msg") or ""
    try:
        return parse_sinfo(result.get("stdout", ""), host, result.get("rc", 1), error)
    except PwrunError as exc:
        raise AnsibleFilterError(str(exc)) from None


def pwrun_sinfo_command(sinfo: str) -> str:
    """The sinfo command line whose output pwrun_sinfo_facts reads (one format, in Python)."""
    from pwrun.cluster.slurm import sinfo_command

    return sinfo_command(sinfo)


class FilterModule:
    def filters(self) -> dict:
        return {"pwrun_sinfo_facts": pwrun_sinfo_facts, "pwrun_sinfo_command": pwrun_sinfo_command}
