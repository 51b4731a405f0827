"""Filter `pwrun_sinfo_facts`: sinfo output -> cluster facts (pwrun.provision.slurm)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def pwrun_sinfo_facts(output: str, host: str = "cluster") -> dict:
    from pwrun.errors import PwrunError
    from pwrun.provision.slurm import parse_sinfo

    try:
        return parse_sinfo(output, host)
    except PwrunError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self) -> dict:
        return {"pwrun_sinfo_facts": pwrun_sinfo_facts}
