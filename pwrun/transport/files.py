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
import hashlib
import io
import os
import posixpath
import shlex
import subprocess
import tempfile
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pwrun.state import temporary_beside
from pwrun.transport.batching import Batches
from pwrun.transport.contents import (
    KNOWN_KEYS,
    TAR_END,
    WRITTEN_MODE,
    Identity,
    TransferError,
    chunks,
    consume,
    identity,
    key_of,
    on_workstation,
    open_version,
    read_hashed,
    safe_name,
    send_file,
    send_member,
    stale,
    unreadable,
    write_atomically,
)
from pwrun.transport.ssh import SSHTarget, last_line

STORE_DIR = "files"  # beside the run's executor directories on a site; removed at teardown
JOBS_FILE = "jobs"  # in an executor's directory on a site: its PBS job ids, one a line
MANIFEST = ".manifest"
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


def store_dir(remote_dir: str) -> str:
    """The content store of the run whose executor directory on a site is `remote_dir`."""
    return posixpath.join(posixpath.dirname(remote_dir), STORE_DIR)


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
                if KNOWN_KEYS.get(version) not in self.objects:
                    send.setdefault(version, path)
            waiting.append((request, future, versions))
        links = {
            self.input_path(KNOWN_KEYS.get(version, ""), path): version
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
                f"{self.store}/{self.input_path(KNOWN_KEYS[version], path)}"
                for version, path in zip(versions, request.paths, strict=True)
            ])  # fmt: skip

    def version(self, path: Path) -> Identity:
        try:
            return identity(path.stat())
        except OSError as exc:
            raise TransferError(f"input {path} for {self.site}: {on_workstation(exc)}") from None

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
                    KNOWN_KEYS.update(
                        zip([version for version, _ in large + small], keys, strict=True)
                    )
                    links = {
                        self.input_path(KNOWN_KEYS[version], path): KNOWN_KEYS[version]
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
            fetch.dest.parent.mkdir(parents=True, exist_ok=True)
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
                os.chmod(temporary, WRITTEN_MODE)
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
