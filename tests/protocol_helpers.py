"""Helpers for protocol tests: a raw DEALER that can send anything, and a health check."""

from __future__ import annotations

import time

from backend.bench.hostile import RawPeer, resign
from shared.protocol import BlockingClient, load_key

__all__ = ["RawPeer", "assert_server_healthy", "resign", "wait_for"]


def assert_server_healthy(endpoint: str, key_file) -> None:
    """A fresh, normal client still gets a correct answer."""
    with BlockingClient(endpoint, key=load_key(key_file), timeout_s=5) as client:
        body = client.call("synthetic_frames", {"n_frames": 3, "shape": [2, 2]}).body
        assert body == {"frames": 3}


def wait_for(predicate, timeout_s: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
