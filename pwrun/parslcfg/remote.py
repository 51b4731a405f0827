"""Parsl providers whose scheduler lives on a login node reached over ssh.

Current Parsl runs sbatch/squeue/scancel locally. ``RemoteSchedulerMixin`` sends those commands
over a shared ssh connection instead, and writes submit scripts on the login node, so Parsl's
own scaling (init/min/max_blocks, parallelism) works unchanged. Mix it in before a Parsl cluster
provider, as `RemoteSlurmProvider` does; `RemotePbsMixin` adds what the PBS family needs.
"""

from __future__ import annotations

import posixpath
import shlex
from pathlib import Path
from typing import Any

from parsl.providers import PBSProProvider, SlurmProvider, TorqueProvider
from parsl.providers.errors import SubmitException

from pwrun.errors import InfrastructureError
from pwrun.parslcfg.compat import SchedulerSeams, qstat_states, set_job_states
from pwrun.transport.files import JOBS_FILE
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

    def refusal(self, script_dir: str) -> str | None:
        """Why the scheduler would refuse this provider's blocks (its own words), or None
        when it would take them or cannot say before a real submission. `script_dir` is a
        local directory for the script checked."""
        return None


class RemoteSlurmProvider(RemoteSchedulerMixin, SlurmProvider):
    """Parsl's SlurmProvider, driving Slurm on a login node over ssh."""

    testing = False  # while True, sbatch only checks (--test-only) what it is given

    def scheduler_command(self, cmd: str, timeout: float) -> tuple[int, str, str]:
        if self.testing and cmd.startswith("sbatch "):
            cmd = "sbatch --test-only " + cmd.removeprefix("sbatch ")
        return super().scheduler_command(cmd, timeout)

    def refusal(self, script_dir: str) -> str | None:
        """Submit a block's script, a no-op as its command, with `sbatch --test-only`: Slurm
        checks partition, account, QOS, constraint and sizes against its configuration
        without queueing a job. sbatch's message when it refuses; None otherwise."""
        saved, self.script_dir, self.testing = self.script_dir, script_dir, True
        try:
            self.submit("true", 1, "pwrun-check")
        except SubmitException as exc:
            lines = str(exc.stderr or exc.stdout or exc.message).splitlines()
            said = "; ".join(" ".join(line.split()) for line in lines if line.strip())
            if exc.retcode in (-1, 255):  # a timeout, or ssh's own failure
                raise InfrastructureError(f"{self.ssh.host}: sbatch --test-only: {said}") from None
            if exc.retcode != 0:  # 0: accepted (--test-only prints no job id)
                return said
        finally:
            self.script_dir, self.testing = saved, False
        return None


class RemotePbsMixin(RemoteSchedulerMixin):
    """What the PBS family needs besides remote commands: qsub runs in the submit script
    directory, every job id is recorded on the site, a failed qsub says why, and qstat's
    table is read exactly (`compat.qstat_states`).

    Slurm's Torque wrappers ignore a script's `#PBS -o/-e` and write job output into the
    directory qsub runs in: there it stays under `remote_dir`, removed at teardown.
    """

    last_result: tuple[int, str, str]  # the last scheduler command's (returncode, out, err)

    @property
    def jobs_file(self) -> str:
        """The site's list of this executor's job ids, one a line (teardown qdels them)."""
        return posixpath.join(self.remote_dir, JOBS_FILE)

    def scheduler_command(self, cmd: str, timeout: float) -> tuple[int, str, str]:
        if cmd.startswith("qsub "):
            cmd = f"cd -- {shlex.quote(self.remote_script_dir)} && {cmd}"
        return super().scheduler_command(cmd, timeout)

    def submit(self, command: str, tasks_per_node: int, job_name: str = "parsl") -> str:
        self.last_result = (0, "", "")
        job_id: str | None = super().submit(command, tasks_per_node, job_name)  # type: ignore[misc]
        if not job_id:  # TorqueProvider logs qsub's failure and returns None
            rc, out, err = self.last_result
            raise SubmitException(job_name, f"qsub failed (exit {rc})", out, err)
        self.ssh.run(f"echo {shlex.quote(job_id)} >> {shlex.quote(self.jobs_file)}")
        return job_id

    def execute_wait(self, cmd: str, timeout: float | None = None) -> tuple[int, str, str]:
        self.last_result = super().execute_wait(cmd, timeout)
        return self.last_result

    def _status(self) -> None:
        job_ids = list(self.resources)  # type: ignore[attr-defined]  # TorqueProvider's
        rc, out, _ = self.execute_wait(f"qstat {' '.join(job_ids)}")
        if rc == -1:
            return  # the site is out of reach: the jobs' states are unknown, not ended
        set_job_states(self, qstat_states(out, job_ids))  # type: ignore[arg-type]


class RemoteTorqueProvider(RemotePbsMixin, TorqueProvider):
    """Parsl's TorqueProvider, driving Torque (or Slurm's Torque wrappers) over ssh. Its jobs
    ask `ppn` cores per node: Parsl's own script asks `ppn=tasks_per_node`, which HTEX keeps at
    1 (the launcher runs that many pools), so that count is changed in the script only."""

    def __init__(self, *args: Any, ppn: int = 1, **kwargs: Any) -> None:
        self.ppn = ppn
        super().__init__(*args, **kwargs)

    def _write_submit_script(
        self, template: str, script_filename: str, job_name: str, configs: dict[str, Any]
    ) -> None:
        configs = {**configs, "tasks_per_node": self.ppn}  # the launcher already has its own
        super()._write_submit_script(template, script_filename, job_name, configs)


class RemotePBSProProvider(RemotePbsMixin, PBSProProvider):
    """Parsl's PBSProProvider, driving PBS Pro over ssh. Job states come from qstat's default
    table, which every PBS prints, rather than `qstat -x -f -F json` (PBS Pro only)."""
