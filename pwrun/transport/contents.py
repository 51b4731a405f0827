"""Content on its way between the workstation and a site: versions and content keys, hashed
reads, tar members, and destinations written under a temporary name then renamed."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tarfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from pwrun.errors import InfrastructureError
from pwrun.state import replacing

CHUNK = 1 << 20
KEY_LENGTH = 32  # hex digits of sha256: 128 bits name a content
TAR_END = bytes(1024)

_umask = os.umask(0o22)
os.umask(_umask)
WRITTEN_MODE = 0o666 & ~_umask  # what a file the workflow writes itself would get
_APPENDING = threading.Lock()


class TransferError(InfrastructureError):
    """A file could not be moved; the message names the file, the site and the cause."""


def safe_name(name: str) -> str:
    """A file name made of characters that need no quoting on the site (others become `_`)."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    return "_" if name.strip(".") == "" else name


Identity = tuple[int, int, int, int]  # a file version: device, inode, size, mtime
KNOWN_KEYS: dict[Identity, str] = {}  # content keys of file versions sent or received


def identity(stat: os.stat_result) -> Identity:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def key_of(digest: Any) -> str:
    """The key naming a content in a store: its sha256, shortened."""
    return str(digest.hexdigest()[:KEY_LENGTH])


def on_workstation(exc: OSError) -> str:
    return f"{exc.strerror or exc} on the workstation"


def unreadable(exc: OSError) -> TransferError:
    """The error for a workstation file that could not be read."""
    return TransferError(f"{exc.filename}: {exc.strerror or exc}")


def stale(origin: str) -> OSError:
    return OSError(errno.ESTALE, "changed while being sent", origin)


@contextlib.contextmanager
def open_version(path: Path, version: Identity) -> Iterator[IO[bytes]]:
    """`path` open for reading; `version` is the file as it was asked for: one changed since
    is an error, not a new content sent under the old key."""
    with path.open("rb") as source:
        if identity(os.fstat(source.fileno())) != version:
            raise stale(str(path))
        yield source


def consume(content: Iterable[bytes]) -> None:
    for _ in content:
        pass


def chunks(stream: IO[bytes], size: int) -> Iterator[bytes]:
    """The next `size` bytes of `stream`."""
    while size:
        chunk = stream.read(min(size, CHUNK))
        if not chunk:
            raise EOFError
        size -= len(chunk)
        yield chunk


def send_file(out: IO[bytes], name: str, path: Path, version: Identity) -> str:
    """Write a file as tar member `name`; its content key (see `open_version`)."""
    with open_version(path, version) as source:
        return send_member(out, name, source, version[2], str(path))


def send_member(out: IO[bytes], name: str, source: IO[bytes], size: int, origin: str) -> str:
    """Write `size` bytes of `source` as one tar member, hashing them on the way; their key."""
    digest = hashlib.sha256()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o400, int(time.time())
    out.write(info.tobuf(tarfile.USTAR_FORMAT))
    for chunk in read_hashed(source, size, origin, digest):
        out.write(chunk)
    out.write(bytes(-size % tarfile.BLOCKSIZE))
    return key_of(digest)


def read_hashed(source: IO[bytes], size: int, origin: str, digest: Any) -> Iterator[bytes]:
    """The `size` bytes of `source`, added to `digest` on the way; fewer is a stale file."""
    read = 0
    while chunk := source.read(min(CHUNK, size - read)):
        digest.update(chunk)
        read += len(chunk)
        yield chunk
    if read != size:
        raise stale(origin)


def write_atomically(dest: Path, content: Iterable[bytes], append: bool = False) -> None:
    """Write `content` to `dest` (its directory made if needed) through a temporary file beside
    it, renamed when complete (`append`: after what `dest` holds)."""
    with _APPENDING if append else contextlib.nullcontext():
        dest.parent.mkdir(parents=True, exist_ok=True)
        with replacing(dest, mode=WRITTEN_MODE, fsync=False) as out:
            if append and dest.exists():
                out.write(dest.read_bytes())
            for chunk in content:
                out.write(chunk)
