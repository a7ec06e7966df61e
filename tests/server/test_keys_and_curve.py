"""Key files (mode 0600, never overwritten) and CurveZMQ for remote hosts."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from backend.server.launcher import BackendProcess
from shared.errors import FacecastError
from shared.protocol import BlockingClient, CurveClientKeys, load_key
from shared.protocol.keys import (
    ensure_key_file,
    generate_curve_keypair,
    load_curve_keypair,
    load_curve_public,
)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_key_file_is_created_0600_and_never_overwritten(tmp_path: Path) -> None:
    path, created = ensure_key_file(tmp_path / "k" / "hmac.key")
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_key(path)
    again, created_again = ensure_key_file(path)
    assert again == path and not created_again and load_key(path) == key


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_world_readable_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    path, _ = ensure_key_file(tmp_path / "hmac.key")
    path.chmod(0o644)
    with pytest.raises(FacecastError, match="chmod 600"):
        load_key(path)


def test_missing_and_garbage_key_files(tmp_path: Path) -> None:
    with pytest.raises(FacecastError, match="does not exist"):
        load_key(tmp_path / "nope.key")
    bad = tmp_path / "bad.key"
    bad.write_text("not hex")
    bad.chmod(0o600)
    with pytest.raises(FacecastError, match="hex key"):
        load_key(bad)


def test_serve_prints_key_file_and_refuses_public_bind_without_curve(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "backend.cli", "serve", "--address",
                          "tcp://0.0.0.0:0", "--key-file", str(tmp_path / "k.key")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "not a loopback address" in out.stderr and "--curve" in out.stderr


def _curve_setup(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """Server and client key pairs, and an allow-list folder holding the client's key:
    ``(keys folder, server secret, allow-list folder, client secret)``."""
    keys = tmp_path / "curve"
    _, server_secret = generate_curve_keypair(keys / "server", "server")
    allowed = keys / "allowed"
    pub, alice_secret = generate_curve_keypair(keys / "alice", "alice")
    allowed.mkdir()
    (allowed / "alice.key").write_bytes(pub.read_bytes())
    return keys, server_secret, allowed, alice_secret


def test_curve_allows_listed_clients_only(tmp_path: Path, key_file: Path) -> None:
    keys, server_secret, allowed, alice_secret = _curve_setup(tmp_path)
    _, mallory_secret = generate_curve_keypair(keys / "mallory", "mallory")
    with pytest.raises(FacecastError, match="already exist"):
        generate_curve_keypair(keys / "alice", "alice")

    server_public = load_curve_public(keys / "server" / "server.key")
    with BackendProcess(key_file=key_file, extra_args=[
            "--curve", str(server_secret), "--curve-clients", str(allowed)]) as backend:
        a_pub, a_sec = load_curve_keypair(alice_secret)
        with BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=5,
                            curve=CurveClientKeys(server_public, a_pub, a_sec)) as client:
            assert client.call("info").body["jobs"]
        m_pub, m_sec = load_curve_keypair(mallory_secret)
        with pytest.raises(FacecastError, match="no backend answered"):
            BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=1.5,
                           curve=CurveClientKeys(server_public, m_pub, m_sec))
        with pytest.raises(FacecastError, match="no backend answered"):
            BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=1.5)


def test_cli_info_against_a_real_backend(backend, key_file: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "backend.cli", "info", "--address",
                          backend.endpoint, "--key-file", str(key_file)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"synthetic_frames"' in out.stdout


def test_cli_reports_missing_backend_without_traceback(key_file: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "backend.cli", "info", "--address",
                          "tcp://127.0.0.1:9", "--key-file", str(key_file), "--timeout", "1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "no backend answered" in out.stderr and "Traceback" not in out.stderr


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend.cli", "serve", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("stray", [b"not a certificate\n", b"public-key = \"tooshort\"\n", b""])
def test_curve_refuses_to_start_with_a_stray_allow_list_entry(tmp_path, key_file, stray):
    """One bad *.key among good ones used to make ZeroMQ drop the whole allow-list while
    the server printed `CurveZMQ: on`; now it refuses to start and names the file."""
    _, server_secret, allowed, _ = _curve_setup(tmp_path)
    (allowed / "notes.key").write_bytes(stray)
    out = _serve("--address", "tcp://127.0.0.1:0", "--key-file", str(key_file),
                 "--curve", str(server_secret), "--curve-clients", str(allowed))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "notes.key is not a Curve key certificate" in out.stderr
    assert "CurveZMQ: on" not in out.stdout


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_group_or_world_readable_curve_secret_is_refused(tmp_path, key_file):
    _, server_secret, allowed, client_secret = _curve_setup(tmp_path)
    for mode in (0o640, 0o604):
        server_secret.chmod(mode)
        out = _serve("--address", "tcp://127.0.0.1:0", "--key-file", str(key_file),
                     "--curve", str(server_secret), "--curve-clients", str(allowed))
        assert out.returncode == 2 and "readable by other users" in out.stderr
        assert f"chmod 600 {server_secret}" in out.stderr
    client_secret.chmod(0o644)
    with pytest.raises(FacecastError, match="readable by other users"):
        load_curve_keypair(client_secret)


def test_curve_without_an_allow_list_folder_is_refused(tmp_path, key_file):
    _, server_secret = generate_curve_keypair(tmp_path / "server", "server")
    (tmp_path / "empty").mkdir()
    for extra in ([], ["--curve-clients", str(tmp_path / "missing")],
                  ["--curve-clients", str(tmp_path / "empty")]):
        out = _serve("--address", "tcp://127.0.0.1:0", "--key-file", str(key_file),
                     "--curve", str(server_secret), *extra)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "--curve-clients" in out.stderr
