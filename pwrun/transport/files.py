"""Files between the workstation and one site, over the site's shared ssh connection.

`SiteFiles.put` sends workstation files to the site's content-addressed store (a content goes
once per store, however many tasks or names use it); `SiteFiles.get` fetches site files to
workstation paths. Requests made meanwhile are batched: one tar stream, one ssh round trip per
batch and direction. Every destination is written under a temporary name and renamed, so a
failed transfer leaves no partial file behind. Anything that can turn an object URL into a
local file (and back) can use these two calls. Files of `LARGE` bytes or more go by scp through
the same connection instead (SFTP pipelines its requests: faster than one stream).
"""

from __future__ import annotations

import contextlib
import errno
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
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from pwrun.errors import InfrastructureError
from pwrun.transport.ssh import SSHTarget, last_line

STORE_DIR = "files"  # beside the run's executor directories on a site; removed at teardown
MANIFEST = ".manifest"
CHUNK = 1 << 20
BATCH_LIMIT = 1000  # requests per round trip
KEY_LENGTH = 32  # hex digits of sha256: 128 bits name a content
LARGE = 16 << 20  # bytes: a file this large goes by scp, not in a batch's stream

# Runs in the store: check that {kib} KiB fit, make an incoming directory and say its name
# (large files are copied there meanwhile), unpack the batch there, then move each object into
# place under its content key (a rename: never a partial object) and make the links and
# directories the manifest (the batch's last member) lists.
PUT_SCRIPT = """set -e; umask 077; mkdir -p -- {store}/objects; cd {store}
free=$(df -Pk . | awk 'NR == 2 {{print $4}}')
[ "$free" -ge {kib} ] || {{
  echo "No space left on device: {kib} KiB needed in $PWD, $free KiB free" >&2; exit 28; }}
t=$(mktemp -d .incoming.XXXXXX); trap 'rm -rf -- "$t"' EXIT; echo "$t"
tar -xf - -C "$t"
while read -r op a b; do case $op in
  O) chmod 400 -- "$t/$a"; mv -f -- "$t/$a" "objects/$b";;
  D) mkdir -p -- "$a";;
  L) mkdir -p -- "inputs/$a"; ln -f -- "objects/$a" "inputs/$a/$b";;
esac; done < "$t/{manifest}"
"""
# Reads site paths, one a line; writes each file as its size, a newline and its bytes (only
# its size and " large" from {large} bytes: fetched by scp after), or "-" and a newline when
# it is not a regular file (and why, on stderr).
GET_SCRIPT = """while IFS= read -r f; do
  if [ -f "$f" ]; then s=$(wc -c < "$f")
    if [ $s -ge {large} ]; then echo $s large; else echo $s; head -c $s -- "$f"; fi
  else echo -; ls -- "$f" || :; fi
done"""
TAR_END = bytes(1024)

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


Identity = tuple[int, int, int, int]  # a file version: device, inode, size, mtime
_keys: dict[Identity, str] = {}  # content keys of file versions sent or received


def identity(stat: os.stat_result) -> Identity:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def key_of(digest: Any) -> str:
    """The key naming a content in a store: its sha256, shortened."""
    return str(digest.hexdigest()[:KEY_LENGTH])


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
        """Send what the store lacks (files not seen before are hashed on the way), then
        answer each request with its files' site paths."""
        send: dict[Identity, Path] = {}
        waiting: list[tuple[Put, Future[list[str]], list[Identity]]] = []
        for request, future in batch:
            try:
                versions = [self.version(path) for path in request.paths]
            except TransferError as exc:
                future.set_exception(exc)
                continue
            for version, path in zip(versions, request.paths, strict=True):
                if _keys.get(version) not in self.objects:
                    send.setdefault(version, path)
            waiting.append((request, future, versions))
        links = {
            self.input_path(_keys.get(version, ""), path): version
            for request, _, versions in waiting
            for version, path in zip(versions, request.paths, strict=True)
        }
        dirs = {d for request, _, _ in waiting for d in request.dirs}
        if send or dirs or not links.keys() <= self.links:
            try:
                self.send(send, waiting, dirs)
            except TransferError as exc:
                for request, future, _ in waiting:
                    names = ", ".join(map(str, request.paths)) or "task directories"
                    future.set_exception(TransferError(f"sending {names} to {self.site}: {exc}"))
                return
        for request, future, versions in waiting:
            future.set_result([
                f"{self.store}/{self.input_path(_keys[version], path)}"
                for version, path in zip(versions, request.paths, strict=True)
            ])  # fmt: skip

    def version(self, path: Path) -> Identity:
        try:
            return identity(path.stat())
        except OSError as exc:
            raise TransferError(
                f"input {path} for {self.site}: {exc.strerror or exc} on the workstation"
            ) from None

    def send(
        self,
        send: dict[Identity, Path],
        waiting: list[tuple[Put, Future[list[str]], list[Identity]]],
        dirs: set[str],
    ) -> None:
        """Large files by scp into the incoming directory PUT_SCRIPT names, then one tar
        stream to it: the other files (all named n0, n1...), then the manifest saying which
        content key each one is and which links and directories to make."""
        large = [(version, path) for version, path in send.items() if version[2] >= LARGE]
        small = [(version, path) for version, path in send.items() if version[2] < LARGE]
        kib = sum(version[2] for version in send) // 1024 + 1
        script = PUT_SCRIPT.format(store=shlex.quote(self.store), manifest=MANIFEST, kib=kib)
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(
                [*self.ssh.argv(), script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=stderr, start_new_session=True,
            )  # fmt: skip
            assert proc.stdin is not None and proc.stdout is not None
            with proc.stdout:  # open until the site is done: it says where to copy
                try:
                    keys = self.upload(proc.stdout, large) + [
                        send_file(proc.stdin, f"n{i}", path, version)
                        for i, (version, path) in enumerate(small, len(large))
                    ]
                    _keys.update(zip([version for version, _ in large + small], keys, strict=True))
                    links = {
                        self.input_path(_keys[version], path): _keys[version]
                        for request, _, versions in waiting
                        for version, path in zip(versions, request.paths, strict=True)
                    }
                    new_links = {link: key for link, key in links.items() if link not in self.links}
                    manifest = "".join(
                        [f"O n{i} {key}\n" for i, key in enumerate(keys)]
                        + [f"D {d}\n" for d in sorted(dirs)]
                        + [
                            f"L {key} {posixpath.basename(link)}\n"
                            for link, key in new_links.items()
                        ]
                    ).encode()
                    send_member(proc.stdin, MANIFEST, io.BytesIO(manifest), len(manifest), MANIFEST)
                    proc.stdin.write(TAR_END)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass  # the site stopped reading: its stderr says why
                except TransferError:  # a large file did not go: the site removes the others
                    proc.stdin.close()
                    proc.wait()
                    raise
                except OSError as exc:  # a workstation file could not be read
                    proc.kill()
                    proc.wait()
                    raise unreadable(exc) from None
                if proc.wait() != 0 or not proc.stdin.closed:
                    stderr.seek(0)
                    raise TransferError(self.failure(proc.returncode, stderr.read()))
        self.objects.update(keys)
        self.links.update(new_links)
        self.bytes_sent += sum(version[2] for version in send)

    def upload(self, said: IO[bytes], large: list[tuple[Identity, Path]]) -> list[str]:
        """Copy large files by scp (as n0, n1...) into the incoming directory the site names
        on `said` once it has found room, hashing them meanwhile; their keys. A file changed
        since it was asked for is an error, as in `send_file`."""
        if not large:
            return []
        digests = [hashlib.sha256() for _ in large]
        try:
            with contextlib.ExitStack() as opened, ThreadPoolExecutor(1) as hashing:
                hashed = [
                    hashing.submit(consume, read_hashed(
                        opened.enter_context(open_version(path, version)), version[2],
                        str(path), digest,
                    ))
                    for (version, path), digest in zip(large, digests, strict=True)
                ]  # fmt: skip
                incoming = said.readline().decode().strip()
                if not incoming:
                    raise BrokenPipeError  # the site gave up: its stderr says why
                for i, (_, path) in enumerate(large):
                    remote = self.ssh.remote(f"{self.store}/{incoming}/n{i}")
                    self.call([*self.ssh.copy_argv(), str(path), remote])
                for done in hashed:
                    done.result()
            for version, path in large:
                if identity(path.stat()) != version:
                    raise stale(str(path))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise unreadable(exc) from None
        return [key_of(digest) for digest in digests]

    def call(self, argv: list[str]) -> str:
        """Run ssh or scp to the site; its output, or a TransferError saying why it failed."""
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, start_new_session=True
        )
        if proc.returncode != 0:
            raise TransferError(self.failure(proc.returncode, proc.stderr))
        return proc.stdout.decode(errors="replace")

    def failure(self, code: int, stderr: bytes) -> str:
        """Why the site's side failed: ssh's last word, or the first error of the command
        (tar's last line only says that it failed)."""
        text = stderr.decode(errors="replace")
        if code == 255:
            return f"ssh failed: {last_line(text)}"
        lines = text.strip().splitlines()
        return lines[0] if lines else f"exited {code}"

    # --- from the site ----------------------------------------------------------------------

    def get_batch(self, batch: list[tuple[tuple[Fetch, ...], Future[None]]]) -> None:
        fetches = [fetch for request, _ in batch for fetch in request]
        try:
            problems = self.receive(fetches)
        except TransferError as exc:
            problems = dict.fromkeys(fetches, str(exc))
        for request, future in batch:
            failed = [f"{f.dest} (from {self.site}:{f.site_path}): {problems[f]}"
                      for f in request if f in problems]  # fmt: skip
            if failed:
                future.set_exception(TransferError("; ".join(failed)))
            else:
                future.set_result(None)

    def receive(self, fetches: list[Fetch]) -> dict[Fetch, str]:
        """One stream of the wanted site files (GET_SCRIPT), each written to its destination;
        the problems, by fetch."""
        problems: dict[Fetch, str] = {}
        absent: list[Fetch] = []
        large: list[tuple[Fetch, int]] = []
        with tempfile.TemporaryFile() as paths, tempfile.TemporaryFile() as stderr:
            paths.write("".join(f"{fetch.site_path}\n" for fetch in fetches).encode())
            paths.seek(0)
            proc = subprocess.Popen(
                [*self.ssh.argv(), GET_SCRIPT.format(large=LARGE)], stdin=paths,
                stdout=subprocess.PIPE, stderr=stderr, start_new_session=True,
            )  # fmt: skip
            assert proc.stdout is not None
            try:
                for fetch in fetches:
                    header = proc.stdout.readline()
                    if header == b"-\n":
                        absent.append(fetch)
                    elif header.endswith(b" large\n"):
                        large.append((fetch, int(header.split()[0])))
                    elif header.strip().isdigit():
                        problem = self.receive_one(proc.stdout, int(header), fetch)
                        problems.update({fetch: problem} if problem else {})
                    else:
                        raise EOFError
            except EOFError:  # the stream ended or went wrong: the site's side says why
                proc.stdout.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
                proc.kill()
                proc.wait()
                stderr.seek(0)
                raise TransferError(self.failure(proc.returncode, stderr.read())) from None
            finally:
                proc.stdout.close()
            proc.wait()
            stderr.seek(0)
            text = stderr.read()
            if proc.returncode != 0:
                raise TransferError(self.failure(proc.returncode, text))
            messages = text.decode(errors="replace").splitlines()
        for fetch, size in large:
            problem = self.download(fetch, size)
            problems.update({fetch: problem} if problem else {})
        for fetch in absent:
            said = next((m.rsplit(": ", 1)[-1] for m in messages if fetch.site_path in m), "")
            if fetch.required:
                problems[fetch] = f"not on the site ({said or 'not a regular file'})"
        return problems

    def receive_one(self, stream: IO[bytes], size: int, fetch: Fetch) -> str | None:
        """Write the next `size` bytes of `stream` to the fetch's destination; a problem
        there is returned (the bytes are still consumed), a stream that ends is EOFError."""
        content = chunks(stream, size)
        try:
            write_atomically(fetch.dest, content, fetch.append)
        except OSError as exc:
            consume(content)  # keep the stream in step
            return on_workstation(exc)
        self.bytes_received += size
        return None

    def download(self, fetch: Fetch, size: int) -> str | None:
        """scp a large site file to a temporary beside its destination, renamed (or added to
        it, for an `append`) when complete; a problem is returned."""
        try:
            fd, temporary = temporary_beside(fetch.dest)
        except OSError as exc:
            return on_workstation(exc)
        os.close(fd)
        try:
            self.call([*self.ssh.copy_argv(), self.ssh.remote(fetch.site_path), temporary])
            if fetch.append:
                with open(temporary, "rb") as content:
                    write_atomically(fetch.dest, chunks(content, size), append=True)
            else:
                os.chmod(temporary, 0o666 & ~_UMASK)
                os.replace(temporary, fetch.dest)
        except TransferError as exc:
            return str(exc)
        except OSError as exc:
            return on_workstation(exc)
        except EOFError:
            return "changed on the site while being copied"
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        self.bytes_received += size
        return None


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


def temporary_beside(dest: Path) -> tuple[int, str]:
    """A new temporary file in `dest`'s directory (made if needed): its descriptor, path."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")


def write_atomically(dest: Path, content: Iterable[bytes], append: bool = False) -> None:
    """Write `content` to `dest` through a temporary file beside it, renamed when complete
    (`append`: after what `dest` holds)."""
    with _APPENDING if append else contextlib.nullcontext():
        fd, temporary = temporary_beside(dest)
        try:
            with os.fdopen(fd, "wb") as out:
                if append and dest.exists():
                    out.write(dest.read_bytes())
                for chunk in content:
                    out.write(chunk)
            os.chmod(temporary, 0o666 & ~_UMASK)
            os.replace(temporary, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
