"""Files between the workstation and one site, over the site's shared ssh connection.

`SiteFiles.put` sends workstation files to the site's content-addressed store (a content goes
once per store, however many tasks or names use it); `SiteFiles.get` fetches site files to
workstation paths. Requests made meanwhile are batched: one tar stream, one ssh round trip per
batch and direction. Every destination is written under a temporary name and renamed, so a
failed transfer leaves no partial file behind. Anything that can turn an object URL into a
local file (and back) can use these two calls.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import queue
import re
import shlex
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Generic, TypeVar

from pwrun.errors import InfrastructureError
from pwrun.transport.ssh import SSHTarget, last_line

STORE_DIR = "files"  # beside the run's executor directories on a site; removed at teardown
MANIFEST = ".manifest"
CHUNK = 1 << 20
BATCH_LIMIT = 1000  # requests per round trip
KEY_LENGTH = 32  # hex digits of sha256: 128 bits name a content

# Runs in the store: unpack the batch in a fresh directory, then move each object into place
# (a rename: never a partial object) and make the links and directories the manifest lists.
PUT_SCRIPT = """set -e; umask 077; mkdir -p -- {store}/objects; cd {store}
free=$(df -Pk . | awk 'NR == 2 {{print $4}}')
[ "$free" -ge {kib} ] || {{
  echo "No space left on device: {kib} KiB needed in $PWD, $free KiB free" >&2; exit 28; }}
t=$(mktemp -d .incoming.XXXXXX); trap 'rm -rf -- "$t"' EXIT
tar -xf - -C "$t"
while read -r op a b; do case $op in
  O) chmod 400 -- "$t/$a"; mv -f -- "$t/$a" "objects/$a";;
  D) mkdir -p -- "$a";;
  L) mkdir -p -- "inputs/$a"; ln -f -- "objects/$a" "inputs/$a/$b";;
esac; done < "$t/{manifest}"
"""
GET_COMMAND = "tar -cPf - --ignore-failed-read --null -T -"

_UMASK = os.umask(0o22)
os.umask(_UMASK)
_APPENDING = threading.Lock()

T = TypeVar("T")
R = TypeVar("R")


class TransferError(InfrastructureError):
    """A file could not be moved; the message names the file, the site and the cause."""


def store_dir(remote_dir: str) -> str:
    """The content store of the run whose executor directory on a site is `remote_dir`."""
    return posixpath.join(posixpath.dirname(remote_dir), STORE_DIR)


def safe_name(name: str) -> str:
    """A file name made of characters that need no quoting on the site (others become `_`)."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    return "_" if name.strip(".") == "" else name


_keys: dict[tuple[int, int, int, int], str] = {}


def content_key(path: Path) -> str:
    """The key naming `path`'s content in a store (sha256), computed once per file version."""
    with path.open("rb") as file:
        stat = os.fstat(file.fileno())
        identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if identity not in _keys:
            digest = hashlib.sha256()
            while chunk := file.read(CHUNK):
                digest.update(chunk)
            _keys[identity] = digest.hexdigest()[:KEY_LENGTH]
    return _keys[identity]


@dataclass(frozen=True)
class Fetch:
    """One site file to bring to the workstation."""

    site_path: str
    dest: Path
    required: bool = True  # False: a missing site file is skipped, not an error
    append: bool = False  # add to `dest` (still through a renamed temporary) instead of replacing


@dataclass(frozen=True)
class Put:
    """Workstation files to have in the store, and store-relative directories to make."""

    paths: tuple[Path, ...]
    dirs: tuple[str, ...]


class Batches(Generic[T, R]):
    """Requests made meanwhile, handled together in one thread; each gets its own Future."""

    def __init__(self, name: str, handle: Callable[[list[tuple[T, Future[R]]]], None]) -> None:
        self.name = name
        self.handle = handle
        self.pending: queue.SimpleQueue[tuple[T, Future[R]]] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.starting = threading.Lock()

    def submit(self, request: T) -> Future[R]:
        future: Future[R] = Future()
        self.pending.put((request, future))
        with self.starting:
            if self.thread is None:
                self.thread = threading.Thread(target=self.loop, name=self.name, daemon=True)
                self.thread.start()
        return future

    def loop(self) -> None:
        while True:
            batch = [self.pending.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < BATCH_LIMIT:
                    batch.append(self.pending.get_nowait())
            try:
                self.handle(batch)
            except Exception as exc:  # a bug must not leave futures waiting forever
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)


class SiteFiles:
    """The files of one run on one site: its store, and fetches from the site."""

    def __init__(self, site: str, ssh: SSHTarget, store: str) -> None:
        self.site = site
        self.ssh = ssh
        self.store = store
        self.objects: set[str] = set()  # keys whose content is in the store
        self.links: set[str] = set()  # store-relative input paths made
        self.bytes_sent = 0
        self.bytes_received = 0
        self.puts: Batches[Put, list[str]] = Batches(f"pwrun-put-{site}", self.put_batch)
        self.gets: Batches[tuple[Fetch, ...], None] = Batches(f"pwrun-get-{site}", self.get_batch)

    def put(self, paths: Iterable[Path], dirs: Iterable[str] = ()) -> Future[list[str]]:
        """Have `paths` in the store (and make `dirs`, relative to it); the future gives each
        path's absolute site path: `<store>/inputs/<content key>/<name>`."""
        return self.puts.submit(Put(tuple(paths), tuple(dirs)))

    def get(self, fetches: Iterable[Fetch]) -> Future[None]:
        """Copy site files to the workstation; the future fails naming every file that did not
        arrive, and why."""
        return self.gets.submit(tuple(fetches))

    def input_path(self, key: str, path: Path) -> str:
        """Where a workstation file's content appears in the store, under its own name."""
        return f"inputs/{key}/{safe_name(path.name)}"

    # --- to the site ------------------------------------------------------------------------

    def put_batch(self, batch: list[tuple[Put, Future[list[str]]]]) -> None:
        send: dict[str, Path] = {}
        links: dict[str, str] = {}
        dirs: set[str] = set()
        waiting: list[tuple[Put, Future[list[str]], list[str]]] = []
        for request, future in batch:
            try:
                keys = [(self.key(path), path) for path in request.paths]
            except TransferError as exc:
                future.set_exception(exc)
                continue
            relative = [self.input_path(key, path) for key, path in keys]
            for (key, path), link in zip(keys, relative, strict=True):
                if key not in self.objects:
                    send.setdefault(key, path)
                if link not in self.links:
                    links[link] = key
            dirs.update(request.dirs)
            waiting.append((request, future, [f"{self.store}/{link}" for link in relative]))
        if send or links or dirs:
            try:
                self.send(send, links, dirs)
            except TransferError as exc:
                for request, future, _ in waiting:
                    names = ", ".join(map(str, request.paths)) or "task directories"
                    future.set_exception(TransferError(f"sending {names} to {self.site}: {exc}"))
                return
            self.objects.update(send)
            self.links.update(links)
        for _, future, site_paths in waiting:
            future.set_result(site_paths)

    def key(self, path: Path) -> str:
        try:
            return content_key(path)
        except OSError as exc:
            raise TransferError(
                f"input {path} for {self.site}: {exc.strerror or exc} on the workstation"
            ) from None

    def send(self, objects: dict[str, Path], links: dict[str, str], dirs: set[str]) -> None:
        """One tar stream holding the objects and a manifest, unpacked by PUT_SCRIPT."""
        manifest = "".join(
            [f"O {key}\n" for key in objects]
            + [f"D {d}\n" for d in sorted(dirs)]
            + [f"L {key} {posixpath.basename(link)}\n" for link, key in links.items()]
        ).encode()
        size = sum(path.stat().st_size for path in objects.values()) + len(manifest)
        script = PUT_SCRIPT.format(
            store=shlex.quote(self.store), manifest=MANIFEST, kib=size // 1024 + 1
        )
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(
                [*self.ssh.argv(), script], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=stderr, start_new_session=True,
            )  # fmt: skip
            assert proc.stdin is not None
            try:
                sent = write_tar(proc.stdin, objects, manifest)
            except BrokenPipeError:
                sent = 0  # the site stopped reading: its stderr says why
            except OSError as exc:  # a workstation file could not be read
                proc.kill()
                proc.wait()
                raise TransferError(f"{exc.filename}: {exc.strerror or exc}") from None
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            if proc.wait() != 0:
                raise TransferError(self.failure(proc.returncode, stderr))
        self.bytes_sent += sent

    def failure(self, code: int, stderr: IO[bytes]) -> str:
        """Why the site's side failed: ssh's last word, or the first error of the command
        (tar's last line only says that it failed)."""
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
        if code == 255:
            return f"ssh failed: {last_line(text)}"
        lines = text.strip().splitlines()
        return lines[0] if lines else f"exited {code}"

    # --- from the site ----------------------------------------------------------------------

    def get_batch(self, batch: list[tuple[tuple[Fetch, ...], Future[None]]]) -> None:
        wanted: dict[str, list[Fetch]] = {}
        for fetches, _ in batch:
            for fetch in fetches:
                wanted.setdefault(fetch.site_path, []).append(fetch)
        problems: dict[Fetch, str] = {}
        if wanted:
            try:
                problems = self.receive(wanted)
            except TransferError as exc:
                problems = {fetch: str(exc) for fetches in wanted.values() for fetch in fetches}
        for fetches, future in batch:
            failed = [f"{f.dest} (from {self.site}:{f.site_path}): {problems[f]}"
                      for f in fetches if f in problems]  # fmt: skip
            if failed:
                future.set_exception(TransferError("; ".join(failed)))
            else:
                future.set_result(None)

    def receive(self, wanted: dict[str, list[Fetch]]) -> dict[Fetch, str]:
        """One tar stream of the wanted site files, each written to its destinations."""
        problems: dict[Fetch, str] = {}
        arrived: set[str] = set()
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(
                [*self.ssh.argv(), GET_COMMAND], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=stderr, start_new_session=True,
            )  # fmt: skip
            assert proc.stdin is not None and proc.stdout is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(b"".join(path.encode() + b"\0" for path in wanted))
                proc.stdin.close()
            try:
                with tarfile.open(fileobj=proc.stdout, mode="r|", bufsize=CHUNK) as tar:
                    for member in tar:
                        source = tar.extractfile(member) if member.isfile() else None
                        if source is None or member.name not in wanted:
                            continue
                        arrived.add(member.name)
                        self.bytes_received += member.size
                        problems.update(write_all(wanted[member.name], source))
            except tarfile.TarError as exc:  # the stream broke off: the site's stderr says why
                proc.kill()
                proc.wait()
                raise TransferError(f"{self.failure(proc.returncode, stderr)} ({exc})") from None
            finally:
                proc.stdout.close()
            if proc.wait() != 0:
                raise TransferError(self.failure(proc.returncode, stderr))
            stderr.seek(0)
            messages = stderr.read().decode(errors="replace").splitlines()
        for path, fetches in wanted.items():
            if path in arrived:
                continue
            said = next((m.split(": ", 2)[-1] for m in messages if path in m), "")
            cause = f"not on the site ({said.removeprefix('Warning: ')})" if said else "not sent"
            problems.update({f: cause for f in fetches if f.required})
        return problems


def write_tar(out: IO[bytes], objects: dict[str, Path], manifest: bytes) -> int:
    """Write a tar stream of `objects` (named by key) and the manifest; return the bytes sent."""
    sent = 0
    with tarfile.open(fileobj=out, mode="w|", bufsize=CHUNK) as tar:
        for key, path in objects.items():
            with path.open("rb") as source:
                info = tar.gettarinfo(fileobj=source, arcname=key)
                tar.addfile(info, source)
                sent += info.size
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return sent


def write_all(fetches: list[Fetch], source: IO[bytes]) -> dict[Fetch, str]:
    """Write one arriving file to each of its destinations; the problems, by fetch."""
    problems = {}
    content = None if len(fetches) == 1 else source.read()  # rarely: one file, several places
    for fetch in fetches:
        try:
            write_atomically(fetch.dest, source if content is None else io.BytesIO(content),
                             fetch.append)  # fmt: skip
        except OSError as exc:
            problems[fetch] = f"{exc.strerror or exc} on the workstation"
    return problems


def write_atomically(dest: Path, source: IO[bytes], append: bool = False) -> None:
    """Write `source` to `dest` through a temporary file beside it, renamed when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _APPENDING if append else contextlib.nullcontext():
        fd, temporary = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                if append and dest.exists():
                    with dest.open("rb") as old:
                        copy(old, out)
                copy(source, out)
            os.chmod(temporary, 0o666 & ~_UMASK)
            os.replace(temporary, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def copy(source: IO[bytes], out: IO[bytes]) -> None:
    while chunk := source.read(CHUNK):
        out.write(chunk)
