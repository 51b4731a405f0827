"""Render a Parsl Config: one encrypted HighThroughputExecutor per site.

The interchange listens on the workstation's loopback; workers on a site's compute nodes are
told the login node's internal address and the tunnel's port there, and use certificates made
here and copied to the site.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parsl.config import Config
from parsl.curvezmq import create_certificates
from parsl.executors.base import ParslExecutor
from parsl.monitoring import MonitoringHub
from parsl.providers.cluster_provider import ClusterProvider

from pwrun.data.cache import OBJECTS_DIR, ObjectCache
from pwrun.parslcfg import local_executor, run_config
from pwrun.parslcfg.blocks import Blocks, plan_blocks, slurm_options
from pwrun.parslcfg.compat import (
    CLIENT_KEY,
    SERVER_KEY,
    launch_interchange,
    site_server_key,
    use_certificates,
    worker_launch_cmd,
)
from pwrun.parslcfg.executors import (
    ClusterSpec,
    ExecutorSpec,
    LocalSpec,
    MpiSpec,
    PbsSpec,
    SlurmSpec,
)
from pwrun.parslcfg.failover import Routing, Unreachable
from pwrun.parslcfg.remote import (
    RemotePBSProProvider,
    RemoteSchedulerMixin,
    RemoteSlurmProvider,
    RemoteTorqueProvider,
)
from pwrun.parslcfg.staging import SiteExecutor, SiteMPIExecutor
from pwrun.transport.files import SiteFiles, store_dir
from pwrun.transport.ssh import SSHTarget


@dataclass(frozen=True)
class SiteEndpoint:
    """What a run knows about one site once it is provisioned and tunnelled."""

    site: str  # its name in the inventory
    ssh: SSHTarget
    internal_address: str  # where compute nodes reach the login node
    local_port: int  # the interchange's worker port on workstation loopback
    remote_port: int  # the tunnel's port on the login node's internal address
    remote_dir: str  # this executor's directory on the site (absolute), removed at teardown
    worker_init: str  # activates the provisioned env
    facts: Mapping[str, Any] = field(default_factory=dict)  # the cluster's (node sizes)


def site_executor(
    label: str,
    spec: ClusterSpec,
    site: SiteEndpoint,
    cert_dir: str,
    files: SiteFiles,
    objects: ObjectCache,
) -> SiteExecutor | SiteMPIExecutor:
    """One encrypted executor (an HTEX, or an MPIExecutor for `kind: mpi`) whose blocks are
    batch jobs on `site`, submitted over ssh; its tasks' files and streams move through
    `files`, their objects through `objects`."""
    remote_cert_dir = f"{site.remote_dir}/certificates"
    blocks = plan_blocks(spec, site.facts)
    common: dict[str, Any] = {
        "label": label,
        "address": "127.0.0.1",
        "worker_port": site.local_port,
        "launch_cmd": worker_launch_cmd(site.internal_address, site.remote_port, remote_cert_dir),
        "worker_logdir_root": f"{site.remote_dir}/worker_logs",
        "provider": cluster_provider(spec, site, blocks),
        "encrypted": True,
        "heartbeat_period": spec.heartbeat_period,
        "heartbeat_threshold": spec.heartbeat_threshold,
    }
    executor: SiteExecutor | SiteMPIExecutor
    if isinstance(spec, MpiSpec):
        executor = SiteMPIExecutor(
            **common,
            max_workers_per_block=spec.max_workers_per_block,
            mpi_launcher=spec.mpi_launcher,
        )
    else:
        executor = SiteExecutor(
            **common,
            cores_per_worker=spec.cores_per_worker,
            max_workers_per_node=blocks.max_workers_per_node,
            available_accelerators=blocks.accelerators(),
        )
    launch_interchange(executor)
    use_certificates(executor, cert_dir)
    executor.attach(files, site.remote_dir, objects)
    executor.task_timeout = spec.task_timeout
    return executor


def refusals(config: Config, run_dir: Path) -> dict[str, str]:
    """Per executor label, its scheduler's refusal of its blocks, asked of every site at once
    before any block is submitted (scripts under `run_dir`/submit_checks)."""
    script_dir = run_dir / "submit_checks"
    script_dir.mkdir(exist_ok=True)
    providers: dict[str, RemoteSchedulerMixin] = {}
    for executor in config.executors:
        provider = getattr(executor, "provider", None)  # HTEX and MPIExecutor have one
        if isinstance(provider, RemoteSchedulerMixin):
            providers[executor.label] = provider
    with ThreadPoolExecutor(len(providers) or 1, thread_name_prefix="pwrun-check") as pool:
        asked = {label: pool.submit(p.refusal, str(script_dir)) for label, p in providers.items()}
        return {label: said for label, future in asked.items() if (said := future.result())}


def cluster_provider(
    spec: ClusterSpec, site: SiteEndpoint, blocks: Blocks | None = None
) -> ClusterProvider:
    """The Parsl provider that submits `spec`'s blocks on `site`, by its scheduler, sized as
    `blocks` (default: `plan_blocks` of the site's facts) says."""
    blocks = blocks or plan_blocks(spec, site.facts)
    common: dict[str, Any] = dict(
        ssh=site.ssh,
        remote_dir=site.remote_dir,
        nodes_per_block=spec.nodes_per_block,
        init_blocks=spec.init_blocks,
        min_blocks=spec.min_blocks,
        max_blocks=spec.max_blocks,
        parallelism=spec.parallelism,
        walltime=spec.walltime,
        scheduler_options=spec.scheduler_options,
        worker_init=spec.shell_init(site.worker_init),
        cmd_timeout=60,
    )
    if isinstance(spec, SlurmSpec):
        return RemoteSlurmProvider(**slurm_options(spec, blocks), **common)
    if not isinstance(spec, PbsSpec):
        raise TypeError(f"no provider for {type(spec).__name__}")
    launcher = blocks.parsl_launcher()
    pbs = dict(queue=spec.queue, account=spec.account, launcher=launcher, **common)
    cores = blocks.cores_per_node or 1  # Parsl's own default for both
    if spec.provider == "torque":
        return RemoteTorqueProvider(ppn=cores, **pbs)
    return RemotePBSProProvider(select_options=spec.select_options, cpus_per_node=cores, **pbs)


def make_certificates(run_dir: Path) -> Path:
    """CurveZMQ keys for this run, shared by every site's executor; only the user reads them."""
    cert_dir = Path(create_certificates(str(run_dir)))
    for key in cert_dir.iterdir():
        key.chmod(0o600)
    return cert_dir


def site_certificates(cert_dir: Path) -> dict[str, str]:
    """The key files a site's workers need: the client's key pair and the server's PUBLIC key.

    The interchange's secret key never leaves the workstation.
    """
    return {
        CLIENT_KEY: (cert_dir / CLIENT_KEY).read_text(),
        SERVER_KEY: site_server_key(cert_dir),
    }


def copy_certificates(cert_dir: Path, site: SiteEndpoint) -> None:
    """Copy what the workers need to the site, readable by the site user only."""
    for name, content in site_certificates(cert_dir).items():
        site.ssh.write_file(f"{site.remote_dir}/certificates/{name}", content)


def render(
    specs: dict[str, ExecutorSpec],
    sites: dict[str, SiteEndpoint],
    run_dir: Path,
    cert_dir: Path,
    routing: Routing | None = None,
    resume: Sequence[str] = (),
    monitoring: MonitoringHub | None = None,
) -> Config:
    """The run's Config: one executor per label, in the order of the executors file, failed
    tries routed by `routing` and the checkpoints in `resume` reused (see `run_config`).

    Labels on the local site run on this machine; every other label has an endpoint in `sites`,
    or its site was unreachable at start (`routing.lost`): its tasks fail over at once.
    Labels sharing a site and run directory share its file store; all share the run's object
    cache (`<run_dir>/objects`).
    """
    routing = routing or Routing()
    objects = ObjectCache(run_dir / OBJECTS_DIR)
    stores: dict[tuple[SSHTarget, str], SiteFiles] = {}
    executors: list[ParslExecutor] = []
    for label, spec in specs.items():
        if isinstance(spec, LocalSpec):
            executors.append(local_executor(label, spec))
            continue
        if label not in sites:
            executors.append(Unreachable(label, routing.lost[spec.site]))
            continue
        site = sites[label]
        store = (site.ssh, store_dir(site.remote_dir))
        if store not in stores:
            stores[store] = SiteFiles(site.site, *store)
        executors.append(site_executor(label, spec, site, str(cert_dir), stores[store], objects))
    return run_config(executors, run_dir, routing, resume, monitoring)
