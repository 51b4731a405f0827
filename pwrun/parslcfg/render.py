"""Render a Parsl Config: one encrypted HighThroughputExecutor per site.

The interchange listens on the workstation's loopback; workers on a site's compute nodes are
told the login node's internal address and the tunnel's port there, and use certificates made
here and copied to the site.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parsl.config import Config
from parsl.curvezmq import create_certificates
from parsl.executors.base import ParslExecutor
from parsl.launchers import SingleNodeLauncher
from parsl.providers.cluster_provider import ClusterProvider

from pwrun.data.cache import OBJECTS_DIR, ObjectCache
from pwrun.parslcfg import local_executor, run_config
from pwrun.parslcfg.compat import (
    CLIENT_KEY,
    INTERCHANGE_LAUNCH_CMD,
    SERVER_KEY,
    site_server_key,
    use_certificates,
    worker_launch_cmd,
)
from pwrun.parslcfg.executors import ClusterSpec, ExecutorSpec, LocalSpec, PbsSpec, SlurmSpec
from pwrun.parslcfg.failover import Routing, Unreachable
from pwrun.parslcfg.remote import RemotePBSProProvider, RemoteSlurmProvider, RemoteTorqueProvider
from pwrun.parslcfg.staging import SiteExecutor
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


def site_executor(
    label: str,
    spec: ClusterSpec,
    site: SiteEndpoint,
    cert_dir: str,
    files: SiteFiles,
    objects: ObjectCache,
) -> SiteExecutor:
    """One HTEX whose blocks are batch jobs on `site`, submitted over ssh; its tasks' files
    and streams move through `files`, their objects through `objects`."""
    remote_cert_dir = f"{site.remote_dir}/certificates"
    executor = SiteExecutor(
        label=label,
        address="127.0.0.1",
        worker_port=site.local_port,
        launch_cmd=worker_launch_cmd(site.internal_address, site.remote_port, remote_cert_dir),
        cores_per_worker=spec.cores_per_worker,
        max_workers_per_node=spec.max_workers_per_node,
        worker_logdir_root=f"{site.remote_dir}/worker_logs",
        provider=cluster_provider(spec, site),
        encrypted=True,
        interchange_launch_cmd=list(INTERCHANGE_LAUNCH_CMD),
        heartbeat_period=spec.heartbeat_period,
        heartbeat_threshold=spec.heartbeat_threshold,
    )
    use_certificates(executor, cert_dir)
    executor.attach(files, site.remote_dir, objects)
    executor.task_timeout = spec.task_timeout
    return executor


def cluster_provider(spec: ClusterSpec, site: SiteEndpoint) -> ClusterProvider:
    """The Parsl provider that submits `spec`'s blocks on `site`, by its scheduler."""
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
        return RemoteSlurmProvider(partition=spec.partition, exclusive=False, **common)
    if not isinstance(spec, PbsSpec):
        raise TypeError(f"no provider for {type(spec).__name__}")
    pbs = dict(queue=spec.queue, account=spec.account, launcher=SingleNodeLauncher(), **common)
    if spec.provider == "torque":
        return RemoteTorqueProvider(**pbs)
    return RemotePBSProProvider(select_options=spec.select_options, **pbs)


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
    return run_config(executors, run_dir, routing, resume)
