"""shared.net.is_loopback: the one rule both the server and the add-on apply."""

from __future__ import annotations

import pytest

from shared.net import accepts_connections, endpoint_host, is_loopback


@pytest.mark.parametrize("address", [
    "tcp://127.0.0.1:5557", "tcp://127.8.9.10:1", "tcp://localhost:5557",
    "tcp://LOCALHOST:5557", "tcp://[::1]:5557", "tcp://ip6-localhost:9",
    "ipc:///tmp/facecast", "inproc://jobs"])
def test_loopback_endpoints(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", [
    "tcp://0.0.0.0:5557", "tcp://*:5557", "tcp://[::]:5557", "tcp://192.168.1.20:5557",
    "tcp://10.0.0.1:5557", "tcp://render-box:5557", "tcp://128.0.0.1:5557",
    "tcp://localhost.evil.example:5557", "tcp://[::ffff:8.8.8.8]:1", "tcp://[:1", ""])
def test_remote_or_wildcard_endpoints(address: str) -> None:
    assert not is_loopback(address)


def test_endpoint_host() -> None:
    assert endpoint_host("tcp://*:5557") == "*"
    assert endpoint_host("tcp://[::1]:5557") == "::1"
    assert endpoint_host("ipc:///tmp/x") == ""


def test_server_config_uses_the_same_rule() -> None:
    from backend.server.config import ServerConfig
    from shared.errors import InputError

    ServerConfig(address="tcp://127.8.9.10:5557").validate()
    ServerConfig(address="tcp://[::1]:5557").validate()
    for remote in ("tcp://0.0.0.0:5557", "tcp://128.0.0.1:5557", "tcp://10.0.0.1:1"):
        with pytest.raises(InputError, match="not a loopback address"):
            ServerConfig(address=remote).validate()


def test_a_name_that_only_starts_like_loopback_is_remote() -> None:
    """The server's old check, ``host.startswith("127.")``, took this for loopback."""
    assert not is_loopback("tcp://127.0.0.1.example.com:5557")


def test_accepts_connections_on_loopback(tmp_path) -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert accepts_connections(f"tcp://127.0.0.1:{port}")
        assert accepts_connections(f"tcp://localhost:{port}")
    assert not accepts_connections(f"tcp://127.0.0.1:{port}")  # closed now
    assert not accepts_connections("tcp://127.0.0.1:0")  # "any port": nobody is there
    assert not accepts_connections(f"ipc://{tmp_path / 'none'}")
    (tmp_path / "sock").touch()
    assert accepts_connections(f"ipc://{tmp_path / 'sock'}")
    # Unknowable: say "listening", so nothing starts a second backend on a guess.
    assert accepts_connections("tcp://*:5557") and accepts_connections("inproc://x")
