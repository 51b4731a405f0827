"""What a name, user, address or path may look like before pwrun lets it near a shell or a file.

Values from APIs, inventories and executors files end up in ssh command lines, remote shell
commands, Slurm job scripts, file names and Ansible templates. Each kind has one pattern here;
anything else is refused with a message saying what is allowed. Quoting still applies wherever
a value is used: these patterns are the second line of defence, not the only one.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator

# Parsl labels: job names, file names, directory names. No dots (no "..") and no leading "_"
# (Parsl's own `_parsl_internal`).
LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
# Cluster (inventory host) names: ssh config Host entries, file names.
CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# POSIX-ish login names (useradd's rules, plus Samba's trailing $).
USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}\$?")
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?")
# Directories on a site: absolute or under the home directory, plain characters only.
REMOTE_PATH = re.compile(r"~|~?/[A-Za-z0-9._+/-]*")  # not ~user: another home
# Scheduler names (PBS queues, accounts) go unquoted onto qsub's command line: plain words.
SCHEDULER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+-]{0,127}")
# PBS resource lists (`ngpus=1:mem=4gb`) go into a `#PBS -l` line: one line of plain characters.
PBS_RESOURCES = re.compile(r"[A-Za-z0-9_.=:+-]{0,1000}")

# Parsl retries per task (the executors file's `pwrun.retries`, `pwrun run --retries`).
MAX_RETRIES = 100
# An sshd public host key as known_hosts and authorized_keys lines hold it: "type base64".
HOST_KEY = re.compile(
    r"(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com"
    r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]{16,8192}={0,2}"
)

LABEL_RULE = "letters, digits, '_' and '-', starting with a letter, at most 63 characters"
CLUSTER_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit"
USER_NAME_RULE = "a login name: letters, digits, '_', '.' and '-', not starting with '-'"
ADDRESS_RULE = "an IP address or a DNS host name"
SCHEDULER_NAME_RULE = (
    "a queue or account name: letters, digits and '._@+-', not starting with '.', '@', '+' or '-'"
)
PBS_RESOURCES_RULE = "resources such as 'ngpus=1:mem=4gb': letters, digits and '_.=:+-'"
HOST_KEY_RULE = "an ssh public host key, 'ssh-ed25519 AAAA...' (type and base64 key)"
REMOTE_PATH_RULE = (
    "an absolute path or one under '~/', of letters, digits and '._+/-', with no '..' part"
)


def _check(pattern: re.Pattern[str], rule: str, value: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{value!r} is not allowed here: use {rule}")
    return value


def label(value: str) -> str:
    """A Parsl executor label safe in job names, file names and remote paths."""
    return _check(LABEL, LABEL_RULE, value)


def cluster_name(value: str) -> str:
    return _check(CLUSTER_NAME, CLUSTER_NAME_RULE, value)


def user_name(value: str) -> str:
    return _check(USER_NAME, USER_NAME_RULE, value)


def scheduler_name(value: str) -> str:
    return _check(SCHEDULER_NAME, SCHEDULER_NAME_RULE, value)


def pbs_resources(value: str) -> str:
    return _check(PBS_RESOURCES, PBS_RESOURCES_RULE, value)


def address(value: str) -> str:
    """An IP literal or a host name: never an ssh option (`-o...`) or a shell word."""
    try:
        return ip_address(value)
    except ValueError:
        return _check(HOST_NAME, ADDRESS_RULE, value)


def host_key(value: str) -> str:
    """An ssh public host key, its comment dropped: one known_hosts entry's key, never a
    second line or marker (`@cert-authority`)."""
    return _check(HOST_KEY, HOST_KEY_RULE, " ".join(value.split(" ")[:2]))


def ip_address(value: str) -> str:
    """An IP literal (what Parsl workers are given with `-a`)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def remote_path(value: str) -> str:
    _check(REMOTE_PATH, REMOTE_PATH_RULE, value)
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} is not allowed here: use {REMOTE_PATH_RULE}")
    return value


ClusterName = Annotated[str, AfterValidator(cluster_name)]
UserName = Annotated[str, AfterValidator(user_name)]
Address = Annotated[str, AfterValidator(address)]
IPAddress = Annotated[str, AfterValidator(ip_address)]
HostKey = Annotated[str, AfterValidator(host_key)]
RemotePath = Annotated[str, AfterValidator(remote_path)]
SchedulerName = Annotated[str, AfterValidator(scheduler_name)]
PbsResources = Annotated[str, AfterValidator(pbs_resources)]
