"""Parsl providers whose scheduler lives on a login node reached over ssh.

Current Parsl runs sbatch/squeue/scancel locally. ``RemoteSchedulerMixin`` sends those commands
over a shared ssh connection instead, and writes submit scripts on the login node, so Parsl's
own scaling (init/min/max_blocks, parallelism) works unchanged. Mix it in before a Parsl cluster
provider, as `RemoteSlurmProvider` does.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from parsl.providers import SlurmProvider

from pwrun.errors import InfrastructureError
from pwrun.parslcfg.compat import SchedulerSeams
from pwrun.transport.ssh import SSHTarget


class RemoteSchedulerMixin(SchedulerSeams):
    """Run a cluster provider's scheduler commands on a login node over ssh.

    Parsl sets ``script_dir`` to a local directory; submit scripts, and the job output paths
    derived from it, go under ``remote_dir`` on the login node, a local copy kept in the run.
    """

    def __init__(self, *args: Any, ssh: SSHTarget, remote_dir: str, **kwargs: Any) -> None:
        self.ssh = ssh  # before super().__init__: SlurmProvider runs `sacct -X` there
        self.remote_dir = remote_dir
        super().__init__(*args, **kwargs)

    @property
    def remote_script_dir(self) -> str:
        return posixpath.join(self.remote_dir, "submit_scripts")

    def to_remote(self, text: str) -> str:
        """Rewrite paths under the local script_dir (set by Parsl) to the login node's."""
        return text.replace(self.script_dir, self.remote_script_dir) if self.script_dir else text

    def scheduler_command(self, cmd: str, timeout: float) -> tuple[int, str, str]:
        try:
            proc = self.ssh.run(self.to_remote(cmd), timeout=timeout, check=False)
        except InfrastructureError as exc:  # a timeout
            return -1, "", str(exc)
        return proc.returncode, proc.stdout, proc.stderr

    def write_script(self, script_filename: str, script: str) -> None:
        """Keep the script in the run directory and write it, paths rewritten, on the site."""
        Path(script_filename).write_text(script)
        self.ssh.write_file(self.to_remote(script_filename), self.to_remote(script), mode="700")


class RemoteSlurmProvider(RemoteSchedulerMixin, SlurmProvider):
    """Parsl's SlurmProvider, driving Slurm on a login node over ssh."""
