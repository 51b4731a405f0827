"""Filter `pwrun_sinfo_facts`: sinfo output -> cluster facts (pwrun.provision.slurm)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def pwrun_sinfo_facts(result: dict, host: str = "cluster") -> dict:
    """Facts from the registered result of the sinfo command; a failed sinfo fails clearly."""
    from pwrun.errors import PwrunError
    from pwrun.provision.slurm import parse_sinfo

    error = result.get("stderr") or result.get("msg") or ""
    try:
        return parse_sinfo(result.get("stdout", ""), host, result.get("rc", 1), error)
    except PwrunError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self) -> dict:
        return {"pwrun_sinfo_facts": pwrun_sinfo_facts}
