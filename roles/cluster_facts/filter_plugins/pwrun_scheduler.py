"""Filters over pwrun.cluster.scheduler: the facts command line, and its output -> facts."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def pwrun_scheduler_facts(result: dict, host: str = "cluster") -> dict:
    """Facts from the registered result of the facts command; no scheduler fails clearly."""
    from pwrun.cluster.scheduler import parse_facts
    from pwrun.errors import PwrunError

    error = result.get("stderr") or result.get("msg") or ""
    try:
        return parse_facts(result.get("stdout", ""), host, result.get("rc", 1), error)
    except PwrunError as exc:
        raise AnsibleFilterError(str(exc)) from None


def pwrun_scheduler_command(sinfo: str) -> list[str]:
    """argv of the facts command whose output pwrun_scheduler_facts reads (one format, in
    Python): a POSIX shell script that finds sinfo, else qstat and pbsnodes."""
    from pwrun.cluster.scheduler import facts_command

    return ["sh", "-c", facts_command(sinfo)]


class FilterModule:
    def filters(self) -> dict:
        return {
            "pwrun_scheduler_facts": pwrun_scheduler_facts,
            "pwrun_scheduler_command": pwrun_scheduler_command,
        }
