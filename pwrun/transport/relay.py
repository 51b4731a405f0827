"""A TCP relay that runs on a login node as the remote command of a tunnel's ssh session.

It listens on the login node's internal address (what compute nodes reach) and forwards each
connection to the ssh remote forward on the login node's loopback. It prints ``listening`` once
bound and exits when its parent (the ssh session that started it) goes away, so it never
outlives its tunnel. SIGTERM ends its ssh session too (and so the session's forward), which is
how a later ssh removes a tunnel whose workstation end vanished without the session noticing
(a cut network): its last argument, ``pwrun-tunnel=NAME``, lets ``pkill -f`` find it.
Standard library only: it runs under the cluster's python3.
"""

import asyncio
import errno
import os
import signal
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def is_sshd(pid):
    """Whether process `pid` is an ssh session (`sshd`, or `sshd-session` in OpenSSH 9.8+)."""
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().startswith("sshd")
    except OSError:
        return False


async def main(listen_address, listen_port, target_port):
    async def handle(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", target_port
            )
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer)
        )

    server = await asyncio.start_server(handle, listen_address, listen_port, reuse_address=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("listening", flush=True)
    session = os.getppid()
    while os.getppid() == session and not stop.is_set():  # reparented: the session ended
        await asyncio.sleep(0.05)
    server.close()
    if stop.is_set() and is_sshd(session):  # end the session (its forward), wait till gone
        try:
            os.kill(session, signal.SIGTERM)
        except OSError:
            return
        for _ in range(100):
            if os.getppid() != session:
                return
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    except OSError as exc:  # "address in use" (try another port), "address not available"...
        reason = {errno.EADDRINUSE: "address in use", errno.EADDRNOTAVAIL: "address not available"}
        print(
            f"relay: cannot listen on {sys.argv[1]}:{sys.argv[2]}: "
            f"{reason.get(exc.errno or 0, exc.strerror)}",
            flush=True,
        )
        sys.exit(1)
