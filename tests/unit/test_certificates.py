"""CurveZMQ keys: private on the workstation; sites get what workers need and nothing more."""

from __future__ import annotations

import stat
from pathlib import Path

import zmq.auth
from parsl.curvezmq import _load_certificate

from pwrun.parslcfg import INTERCHANGE_LAUNCH_CMD, local_executor
from pwrun.parslcfg.render import make_certificates, site_certificates


def test_workstation_keys_are_private(tmp_path: Path) -> None:
    cert_dir = make_certificates(tmp_path)
    assert stat.S_IMODE(cert_dir.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in cert_dir.iterdir()}
    assert modes and set(modes.values()) == {0o600}, modes


def test_sites_get_no_server_secret(tmp_path: Path) -> None:
    cert_dir = make_certificates(tmp_path)
    server_public, server_secret = zmq.auth.load_certificate(cert_dir / "server.key_secret")
    files = site_certificates(cert_dir)
    assert set(files) == {"client.key_secret", "server.key_secret"}
    assert server_secret is not None
    assert not any(server_secret.decode() in content for content in files.values())
    # what a worker loads from the site's copy (ClientContext loads "client" and "server")
    site = tmp_path / "site"
    site.mkdir(mode=0o700)
    for name, content in files.items():
        (site / name).write_text(content)
    assert _load_certificate(site, name="server")[0] == server_public
    client_public, client_secret = _load_certificate(site, name="client")
    assert (client_public, client_secret) == _load_certificate(cert_dir, name="client")


def test_interchanges_start_in_their_own_session() -> None:
    """A terminal's Ctrl-C goes to pwrun's process group; the interchange is not in it."""
    assert local_executor().interchange_launch_cmd == list(INTERCHANGE_LAUNCH_CMD)
    assert "os.setsid()" in INTERCHANGE_LAUNCH_CMD[2]
