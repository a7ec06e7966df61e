"""Helpers for protocol tests: a raw DEALER that can send anything, and a health check."""

from __future__ import annotations

import time

import zmq

from shared.protocol import BlockingClient, Codec, Message, MsgType, load_key


class RawPeer:
    """A bare DEALER: sends whatever frames a test crafts and reads raw replies."""

    def __init__(self, endpoint: str, key: bytes) -> None:
        self.codec = Codec(key)
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def hello_frames(self) -> list:
        return self.codec.encode(Message(MsgType.HELLO, {"versions": [[1, 0]], "client": "raw"}))

    def send(self, frames: list) -> None:
        self.sock.send_multipart([bytes(memoryview(f)) for f in frames])

    def recv(self, timeout_s: float = 2.0) -> Message | None:
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        return self.codec.decode(self.sock.recv_multipart())

    def close(self) -> None:
        self.sock.close(linger=0)


def assert_server_healthy(endpoint: str, key_file) -> None:
    """A fresh, normal client still gets a correct answer."""
    with BlockingClient(endpoint, key=load_key(key_file), timeout_s=5) as client:
        body = client.call("stream_test", {"n_frames": 3, "shape": [2, 2]}).body
        assert body == {"frames": 3}


def wait_for(predicate, timeout_s: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
