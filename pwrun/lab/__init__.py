"""A lab of simulated HPC sites on this machine, for tests, molecule scenarios and benchmarks.

Each site is a login node (sshd with key-only login and ``GatewayPorts no``, slurmctld) and one
or more compute nodes (slurmd), each in its own network, UTS, mount and PID namespaces. Compute
nodes reach only their login node; no node reaches the workstation (the root namespace), another
site or the internet; the workstation reaches a site only by ssh to its login node. Everything a
lab makes lives in its directory, its namespaces and one nftables table per site, and `down()`
removes all of it. Needs root and the Debian packages that ``tests/all.sh`` installs.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from pwrun.state import read_record, write_atomic

LAB_USER = "pwlab"
LAB_UID = 4242
PARTITIONS = ("compute", "gpu")
NETNS_PREFIX = "pwlab"
NODE_INIT = Path(__file__).with_name("node_init.py")
SYSTEM_PYTHON = "/usr/bin/python3"
NODE_NAMESPACES = (
    "unshare --uts --mount --pid --fork --kill-child --mount-proc --propagation private"
)
STATE_FILE = "lab.json"
MAX_SLOTS = 200


class LabError(RuntimeError):
    """The lab could not be brought up or down."""


def run(*argv: str, input: str | None = None) -> str:
    """Run a command, returning stdout; raise LabError with its stderr when it fails."""
    proc = subprocess.run(argv, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Node:
    """One host of a site: its namespace, hostname, address and the PID of its init."""

    hostname: str
    netns: str
    address: str
    role: str
    pid: int = 0

    def enter(self) -> list[str]:
        """argv prefix that runs a command inside this node, as root."""
        return ["nsenter", "-t", str(self.pid), "-a"]

    def exec(
        self, command: str, user: str = "root", timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Run a shell command on this node (as `user`) and return the finished process."""
        as_user = [] if user == "root" else ["runuser", "-u", user, "--"]
        argv = [*self.enter(), *as_user, "bash", "-c", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


@dataclass
class Site:
    """A simulated cluster: a login node and its compute nodes."""

    name: str
    slot: int
    login: Node
    computes: list[Node]
    outer_veth: str
    nft_table: str

    @property
    def address(self) -> str:
        """The login node's address as the workstation sees it."""
        return self.login.address

    @property
    def internal_address(self) -> str:
        """The login node's address on the site's internal network (what compute nodes reach)."""
        return f"10.201.{self.slot}.1"

    @property
    def workstation_address(self) -> str:
        """The workstation's end of the link to this site."""
        return f"10.200.{self.slot}.1"

    @property
    def nodes(self) -> list[Node]:
        return [self.login, *self.computes]


@dataclass
class Lab:
    """A running lab: its directory, sites and the ssh files that reach them."""

    directory: Path
    sites: list[Site] = field(default_factory=list)

    # -- files the lab writes for its users ---------------------------------------------------
    @property
    def key(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    @property
    def inventory(self) -> Path:
        return self.directory / "inventory.yml"

    def site(self, name: str) -> Site:
        return next(s for s in self.sites if s.name == name)

    def ssh(
        self, site: Site | str, command: str, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Run `command` on a site's login node over real ssh, host-key checking on."""
        name = site if isinstance(site, str) else site.name
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), name, command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    @classmethod
    def up(cls, sites: int = 2, compute_nodes: int = 1, directory: Path | None = None) -> Lab:
        """Bring up `sites` sites with `compute_nodes` compute nodes each; wait until usable."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, mounts, nftables)")
        if not 1 <= sites <= 26 or not 1 <= compute_nodes <= 8:
            raise LabError("a lab has 1 to 26 sites of 1 to 8 compute nodes")
        directory = Path(directory or tempfile.mkdtemp(prefix="pwrun-lab-"))
        directory.mkdir(parents=True, exist_ok=True)
        lab = cls(directory=directory.resolve())
        try:
            lab._make_user_key()
            with _slot_lock():
                for index, slot in enumerate(_free_slots(sites)):
                    name = f"site-{string.ascii_lowercase[index]}"
                    lab._create_site(name, slot, compute_nodes)
            for site in lab.sites:
                lab._start_site(site)
                lab.save()
            lab._write_client_files()
            lab._wait_ready()
        except BaseException:
            lab.down()
            raise
        return lab

    def down(self) -> None:
        """Remove everything the lab made: processes, namespaces, nftables tables, its directory."""
        for site in self.sites:
            for node in site.nodes:
                _kill_namespace_init(node.pid)
        for site in self.sites:
            for node in site.nodes:
                subprocess.run(["ip", "netns", "del", node.netns], capture_output=True)
            subprocess.run(["nft", "delete", "table", "inet", site.nft_table], capture_output=True)
            subprocess.run(["ip", "link", "del", site.outer_veth], capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What of this lab still exists (empty after a clean `down()`)."""
        found = []
        namespaces = _netns_names()
        tables = run("nft", "list", "tables")
        for site in self.sites:
            for node in site.nodes:
                if node.pid and _alive(node.pid):
                    found.append(f"process {node.pid} ({node.hostname})")
                if node.netns in namespaces:
                    found.append(f"network namespace {node.netns}")
            if f"inet {site.nft_table}" in tables:
                found.append(f"nftables table {site.nft_table}")
            if Path("/sys/class/net", site.outer_veth).exists():
                found.append(f"interface {site.outer_veth}")
        for pid in _processes_in_netns({n.netns for s in self.sites for n in s.nodes}):
            found.append(f"process {pid} in a lab namespace")
        if self.directory.exists():
            found.append(f"directory {self.directory}")
        return found

    def save(self) -> None:
        write_atomic(self.directory / STATE_FILE, json.dumps(asdict(self), default=str, indent=1))

    @classmethod
    def load(cls, directory: Path) -> Lab:
        """The lab whose state is in `directory` (up in one process, down in another)."""
        data = read_record(Path(directory) / STATE_FILE)
        try:
            return cls._from_json(data or {})
        except (KeyError, TypeError) as exc:
            raise LabError(
                f"{Path(directory) / STATE_FILE}: unreadable lab record ({exc}); "
                "`pwrun lab down --all` removes every lab"
            ) from None

    @classmethod
    def _from_json(cls, data: dict) -> Lab:
        sites = [
            Site(
                **{
                    **s,
                    "login": Node(**s["login"]),
                    "computes": [Node(**c) for c in s["computes"]],
                }
            )
            for s in data["sites"]
        ]
        return cls(directory=Path(data["directory"]), sites=sites)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- building blocks ----------------------------------------------------------------------
    def _make_user_key(self) -> None:
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pwrun-lab", "-f", str(self.key))

    def _create_site(self, name: str, slot: int, compute_nodes: int) -> None:
        """Make the site's files and network; its processes start later."""
        login = Node(f"{name}-login", f"{NETNS_PREFIX}{slot}", f"10.200.{slot}.2", "login")
        computes = [
            Node(f"{name}-c{k}", f"{NETNS_PREFIX}{slot}c{k}", f"10.201.{slot}.{10 + k}", "compute")
            for k in range(1, compute_nodes + 1)
        ]
        site = Site(name, slot, login, computes, f"pwl{slot}w", f"pwrun_lab_{slot}")
        self.sites.append(site)  # recorded first, so that down() undoes a half-made site
        self.save()
        _write_site_files(self.directory / "sites" / name, site, self.key.with_suffix(".pub"))
        _make_network(site)

    def _start_site(self, site: Site) -> None:
        site_dir = self.directory / "sites" / site.name
        for node in site.nodes:
            spec = {
                "hostname": node.hostname,
                "role": node.role,
                "etc": str(site_dir / "etc"),
                "home": str(site_dir / "home"),
                "var": str(site_dir / "nodes" / node.hostname),
                "hide": [str(p) for p in _hidden_paths(self.directory)],
                "munge_uid": pwd.getpwnam("munge").pw_uid,
                "munge_gid": pwd.getpwnam("munge").pw_gid,
            }
            spec_file = site_dir / "nodes" / node.hostname / "init.json"
            spec_file.write_text(json.dumps(spec))
            log = open(site_dir / "nodes" / node.hostname / "init.log", "w")  # noqa: SIM115
            launcher = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    node.netns,
                    *NODE_NAMESPACES.split(),
                    SYSTEM_PYTHON,
                    "-I",
                    str(NODE_INIT),
                    str(spec_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            node.pid = _namespace_init_pid(launcher.pid)
            _wait_for(
                lambda n=node, d=site_dir: _init_ready(d / "nodes" / n.hostname),
                20,
                f"{node.hostname} did not start (see its init.log)",
            )

    def _write_client_files(self) -> None:
        pub = lambda s: self.directory / "sites" / s.name / "etc/ssh/ssh_host_ed25519_key.pub"  # noqa: E731
        self.known_hosts.write_text(
            "".join(f"{s.address} {' '.join(pub(s).read_text().split()[:2])}\n" for s in self.sites)
        )
        self.ssh_config.write_text(
            "".join(
                f"Host {s.name}\n  HostName {s.address}\n  User {LAB_USER}\n"
                f"  IdentityFile {self.key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {self.known_hosts}\n  StrictHostKeyChecking yes\n"
                "  BatchMode yes\n  ConnectTimeout 10\n"
                for s in self.sites
            )
        )
        common_args = (
            f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes "
            "-o IdentitiesOnly=yes"
        )
        hosts = {
            s.name: {
                "ansible_host": s.address,
                "ansible_user": LAB_USER,
                "pwrun_public_address": s.address,
                "pwrun_private_address": s.internal_address,
                "pwrun_scheduler": "slurm",
                "pwrun_partitions": list(PARTITIONS),
                "pwrun_status": "on",
                "pwrun_source": "lab",
            }
            for s in self.sites
        }
        inventory = {
            "all": {
                "vars": {
                    "ansible_ssh_private_key_file": str(self.key),
                    "ansible_ssh_common_args": common_args,
                    "ansible_python_interpreter": "/usr/bin/python3",
                },
                "children": {"lab": {"hosts": hosts}},
            }
        }
        self.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))

    def _wait_ready(self) -> None:
        """Wait until every login node takes ssh and every compute node is idle in Slurm."""
        for site in self.sites:
            _wait_for(lambda s=site: _port_open(s.address, 22), 20, f"{site.name}: sshd not up")
            expected = {n.hostname for n in site.computes}
            _wait_for(
                lambda s=site, e=expected: _idle_nodes(s.login) >= e,
                60,
                f"{site.name}: compute nodes did not register with slurmctld",
            )


# -- helpers ----------------------------------------------------------------------------------
def _slot_lock():
    """Serialise slot allocation between labs brought up at the same time.

    The lock is taken on this module's own file, so it leaves nothing behind.
    """

    class _Lock:
        def __enter__(self):
            self.fd = os.open(__file__, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)

        def __exit__(self, *exc):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)

    return _Lock()


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _free_slots(count: int) -> list[int]:
    taken = {
        int(m.group(1))
        for name in _netns_names()
        if (m := re.fullmatch(rf"{NETNS_PREFIX}(\d+)(c\d+)?", name))
    }
    free = [n for n in range(1, MAX_SLOTS + 1) if n not in taken]
    if len(free) < count:
        raise LabError("no free lab slots (stale labs? run `pwrun lab down --all`)")
    return free[:count]


def _hidden_paths(lab_dir: Path) -> list[Path]:
    """Workstation paths a site must not see: the user's home, the project, the lab itself."""
    candidates = [Path.home(), Path("/root"), Path("/work"), Path.cwd(), lab_dir]
    return sorted({p for p in candidates if p.is_dir() and p != Path("/")})


def _write_site_files(site_dir: Path, site: Site, user_pub: Path) -> None:
    """The site's own /etc (a copy with its users, hosts, Slurm, munge and sshd), home and /var."""
    etc = site_dir / "etc"
    site_dir.mkdir(parents=True)
    run("cp", "-a", "/etc", str(etc))  # -a keeps owners: munge and sshd check them
    for host_key in (etc / "ssh").glob("ssh_host_*"):
        host_key.unlink()  # never copy the workstation's own host keys
    with open(etc / "passwd", "a") as f:
        f.write(f"{LAB_USER}:x:{LAB_UID}:{LAB_UID}:pwrun lab user:/home/{LAB_USER}:/bin/bash\n")
    with open(etc / "group", "a") as f:
        f.write(f"{LAB_USER}:x:{LAB_UID}:\n")
    with open(etc / "shadow", "a") as f:
        f.write(f"{LAB_USER}:*:19000:0:99999:7:::\n")  # '*': no password, but not locked
    (etc / "hostname").write_text(f"{site.login.hostname}\n")
    (etc / "hosts").write_text(
        "127.0.0.1 localhost\n"
        f"{site.internal_address} {site.login.hostname}\n"
        + "".join(f"{n.address} {n.hostname}\n" for n in site.computes)
    )
    (etc / "slurm").mkdir(exist_ok=True)
    (etc / "slurm" / "slurm.conf").write_text(_slurm_conf(site))
    munge_key = etc / "munge" / "munge.key"
    munge_key.unlink(missing_ok=True)
    run("mungekey", "-c", "-k", str(munge_key))
    munge = pwd.getpwnam("munge")
    os.chown(munge_key, munge.pw_uid, munge.pw_gid)
    os.chmod(munge_key, 0o400)
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", site.login.hostname,
        "-f", str(etc / "ssh" / "ssh_host_ed25519_key"))  # fmt: skip
    (etc / "ssh" / "sshd_config").write_text(_sshd_config(site))

    home = site_dir / "home"
    ssh_dir = home / LAB_USER / ".ssh"
    ssh_dir.mkdir(parents=True)
    (ssh_dir / "authorized_keys").write_text(user_pub.read_text())
    os.chmod(home, 0o755)
    os.chmod(home / LAB_USER, 0o755)
    os.chmod(ssh_dir, 0o700)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    for path in (home / LAB_USER, ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, LAB_UID, LAB_UID)

    for node in site.nodes:
        var = site_dir / "nodes" / node.hostname
        for sub in ("log/slurm", "log/munge", "spool/slurmctld", "spool/slurmd", "munge"):
            (var / sub).mkdir(parents=True)
        for sub in ("log/munge", "munge"):
            os.chown(var / sub, munge.pw_uid, munge.pw_gid)
            os.chmod(var / sub, 0o700)


def _slurm_conf(site: Site) -> str:
    nodes = ",".join(n.hostname for n in site.computes)
    gpu_nodes = site.computes[-1].hostname
    return "\n".join(
        [
            f"ClusterName={site.name.replace('-', '')}",
            f"SlurmctldHost={site.login.hostname}({site.internal_address})",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt",
            "JobCompLoc=/var/log/slurm/jobcomp.log",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerParameters=batch_sched_delay=0",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            "MpiDefault=none",
            "KillWait=2",
            "MinJobAge=60",
            "StateSaveLocation=/var/spool/slurmctld",
            "SlurmdSpoolDir=/var/spool/slurmd",
            "SlurmctldPidFile=/run/slurm/slurmctld.pid",
            "SlurmdPidFile=/run/slurm/slurmd.pid",
            "SlurmctldLogFile=/var/log/slurm/slurmctld.log",
            "SlurmdLogFile=/var/log/slurm/slurmd.log",
            *(
                f"NodeName={n.hostname} NodeAddr={n.address} CPUs=2 RealMemory=2000 State=UNKNOWN"
                for n in site.computes
            ),
            f"PartitionName=compute Nodes={nodes} Default=YES MaxTime=INFINITE State=UP",
            f"PartitionName=gpu Nodes={gpu_nodes} MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _sshd_config(site: Site) -> str:
    return "\n".join(
        [
            f"ListenAddress {site.address}",
            "HostKey /etc/ssh/ssh_host_ed25519_key",
            "PidFile /run/sshd.pid",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin no",
            f"AllowUsers {LAB_USER}",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "AllowTcpForwarding yes",
            "GatewayPorts no",
            "X11Forwarding no",
            "MaxSessions 64",
            "MaxStartups 64:30:128",
            "Subsystem sftp /usr/lib/openssh/sftp-server",
            "",
        ]
    )


def _make_network(site: Site) -> None:
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
    # The login node takes only ssh and ping from outside.
    run(
        "ip", "netns", "exec", login, "nft", "-f", "-",
        input=(
            "table inet site { chain input { type filter hook input priority 0; policy accept;\n"
            ' iifname "eth0" ct state established,related accept\n'
            ' iifname "eth0" tcp dport 22 accept\n'
            ' iifname "eth0" icmp type echo-request accept\n'
            ' iifname "eth0" drop\n }\n}\n'
        ),
    )  # fmt: skip
    # The workstation takes no new connection from the site and forwards nothing for it.
    veth = site.outer_veth
    run(
        "nft", "-f", "-",
        input=(
            f"table inet {site.nft_table} {{\n"
            " chain input { type filter hook input priority -10; policy accept;\n"
            f'  iifname "{veth}" ct state established,related accept\n'
            f'  iifname "{veth}" icmp type echo-request accept\n'
            f'  iifname "{veth}" drop\n }}\n'
            " chain forward { type filter hook forward priority -10; policy accept;\n"
            f'  iifname "{veth}" drop\n'
            f'  oifname "{veth}" drop\n }}\n'
            "}\n"
        ),
    )  # fmt: skip


def _ip_batch(netns: str, *commands: str) -> None:
    run("ip", "-n", netns, "-batch", "-", input="".join(f"{c}\n" for c in commands))


def _namespace_init_pid(launcher_pid: int, timeout: float = 10) -> int:
    """The PID (as seen here) of the child `unshare --fork` made: PID 1 of the new namespace."""
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pids = children.read_text().split()
        except FileNotFoundError:
            raise LabError(f"node launcher {launcher_pid} exited early") from None
        if pids:
            return int(pids[0])
        time.sleep(0.01)
    raise LabError("node init did not start")


def _init_ready(node_dir: Path) -> bool:
    log = (node_dir / "init.log").read_text()
    if "Traceback" in log or "Error" in log:
        raise LabError(f"{node_dir.name} failed to start:\n{log}")
    return "ready" in log


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill_namespace_init(pid: int) -> None:
    """SIGKILL a node's PID-namespace init, which ends every process in the node; wait for it."""
    if not pid:
        return
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    _wait_for(lambda: not _alive(pid), 10, f"process {pid} survived SIGKILL")


def _processes_in_netns(namespaces: set[str]) -> list[int]:
    """PIDs of processes whose network namespace is one of `namespaces` (by inode)."""
    inodes = set()
    for name in namespaces:
        handle = Path("/run/netns", name)
        if handle.exists():
            inodes.add(handle.stat().st_ino)
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.stat(proc / "ns" / "net").st_ino in inodes:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _idle_nodes(login: Node) -> set[str]:
    proc = login.exec("sinfo -h -N -o '%N %t'", timeout=10)
    return {
        name
        for name, state in (line.split() for line in proc.stdout.splitlines())
        if state == "idle"
    }


def _wait_for(predicate, timeout: float, message: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise LabError(message)
        time.sleep(interval)


def down_all() -> list[str]:
    """Remove every lab namespace and nftables table on this machine (after a crashed run)."""
    removed = []
    for name in sorted(_netns_names()):
        if re.fullmatch(rf"{NETNS_PREFIX}\d+(c\d+)?", name):
            for pid in _processes_in_netns({name}):
                _kill_namespace_init(pid)
            run("ip", "netns", "del", name)
            removed.append(f"network namespace {name}")
    for line in run("nft", "list", "tables").splitlines():
        if re.fullmatch(r"table inet pwrun_lab_\d+", line.strip()):
            table = line.split()[-1]
            run("nft", "delete", "table", "inet", table)
            removed.append(f"nftables table {table}")
    return removed


if __name__ == "__main__":  # pragma: no cover - developer convenience
    sys.exit("use `pwrun lab up|down`")
