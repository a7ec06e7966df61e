"""The server's limits in bytes, over real sockets on loopback: a reader that stops
holds the client's send budget, not the stream; every bad shared-memory payload ends its
job with an error reply (and costs no memory); each session has its own sequence
numbers; a key file path that is a folder is named as one."""

from __future__ import annotations

import time

import numpy as np
import pytest

from backend.bench.hostile import (
    RawPeer,
    not_negotiated_shm,
    shm_abuse,
    shm_session,
    stalled_reader,
)
from backend.server.launcher import BackendProcess
from shared.errors import FacecastError
from shared.protocol import Codec, Message, MsgType, load_key
from shared.protocol import shm as shm_mod
from shared.protocol.keys import ensure_key_file
from tests.protocol_helpers import assert_server_healthy


def _warm(endpoint: str, key_file) -> None:
    assert_server_healthy(endpoint, key_file)  # torch and the job modules are loaded


def test_a_stalled_reader_of_big_frames_holds_the_budget_not_the_stream(key_file) -> None:
    """24 frames of 16 MiB at credit 2^63 to a reader that stops after the first: the
    old server let ZeroMQ queue them all (64 messages per pipe, 380 MiB here); now the
    client's 64 MiB send budget (and the frame its job holds) is all it keeps."""
    with BackendProcess(key_file=key_file) as backend:
        _warm(backend.endpoint, key_file)
        time.sleep(0.3)
        r = stalled_reader(backend.endpoint, load_key(key_file), backend.rss_bytes,
                               frames=24, frame_bytes=16 << 20, stall_s=3.0)
        assert "Traceback" not in backend.log_tail(20000)
    assert r.received == 24 and r.in_order and r.finals == [MsgType.DONE]
    # Stalled, it holds the budget (64 MiB); reading on, a frame being freed while the
    # next is made; both with allocator slack for a loaded machine, far below the
    # 380 MiB the old server held.
    assert r.stalled_growth_mb < 130, f"server memory grew {r.stalled_growth_mb:.0f} MB"
    assert r.growth_mb < 180, f"server memory grew {r.growth_mb:.0f} MB"


@pytest.mark.skipif(not shm_mod.available(), reason="no /dev/shm fast path here")
def test_every_bad_shared_memory_payload_gets_an_error_reply(key_file) -> None:
    key = load_key(key_file)
    with BackendProcess(key_file=key_file) as backend:
        _warm(backend.endpoint, key_file)
        base = backend.rss_bytes()
        peer = shm_session(backend.endpoint, key)
        arena = shm_mod.ShmArena(key, 8 << 20)
        plain = RawPeer(backend.endpoint, key)
        try:
            cases = shm_abuse(peer, arena)
            for name, frames, job in cases:
                peer.send(frames)
                reply = _final_for(peer, job)
                assert reply is not None, f"{name}: no reply"
                assert reply.type == MsgType.ERROR and reply.body["code"] == "bad_request", \
                    (name, reply.type, reply.body)
            plain.send(plain.hello_frames())
            assert plain.recv(5).type == MsgType.WELCOME
            name, frames, job = not_negotiated_shm(plain)
            plain.send(frames)
            reply = _final_for(plain, job)
            assert reply is not None and reply.type == MsgType.ERROR, name
            # The good payload still works on that session afterwards.
            good = arena.share(np.arange(1 << 17, dtype=np.uint8) % 251)
            peer.send(peer.codec.encode(Message(MsgType.SUBMIT, {
                "kind": "synthetic_frames", "params": {"n_frames": 1, "pattern": "echo"}},
                [good], job="good")))
            assert _final_for(peer, "good").type == MsgType.DONE
        finally:
            peer.close()
            plain.close()
            arena.close()
        growth = (backend.rss_bytes() - base) / 1e6
        log = backend.log_tail(50000)
    assert "Traceback" not in log and "Unable to allocate" not in log
    assert growth < 100, f"server memory grew {growth:.0f} MB"


def _final_for(peer: RawPeer, job: str, timeout_s: float = 10.0) -> Message | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = peer.recv(0.5)
        if msg is not None and msg.job == job and msg.type in MsgType.FINAL_TYPES:
            return msg
    return None


def test_each_session_on_a_connection_has_its_own_sequence(backend, key_file) -> None:
    """Two sessions on one connection stream at once: each one's replies carry its own
    session id and numbers 1, 2, 3… (one counter for the connection let a reply of one
    session overtake the other's and be dropped as a replay)."""
    key = load_key(key_file)
    peer = RawPeer(backend.endpoint, key, rcvhwm=1)
    other = Codec(key)
    try:
        for codec in (peer.codec, other):
            peer.send(codec.encode(Message(MsgType.HELLO, {"versions": [[1, 0]]})))
        for codec, job in ((peer.codec, "a"), (other, "b")):
            peer.send(codec.encode(Message(MsgType.SUBMIT, {
                "kind": "synthetic_frames", "credit": 400,
                "params": {"n_frames": 300, "shape": [256, 256]}}, job=job)))
        time.sleep(0.5)  # let the pipe fill
        reader = Codec(key)  # checks each session's sequence as a client would
        seqs: dict[str, list[int]] = {peer.codec.session: [], other.session: []}
        frames = {"a": 0, "b": 0}
        finals: list[str] = []
        deadline = time.monotonic() + 60
        while len(finals) < 2 and time.monotonic() < deadline:
            if not peer.sock.poll(1000):
                continue
            msg = reader.decode(peer.sock.recv_multipart())  # raises on a replay
            seqs[msg.session].append(msg.seq)
            if msg.type == MsgType.FRAME:
                frames[msg.job] += 1
            elif msg.type in MsgType.FINAL_TYPES:
                finals.append(msg.type)
    finally:
        peer.close()
    assert finals == [MsgType.DONE, MsgType.DONE] and frames == {"a": 300, "b": 300}
    for session, numbers in seqs.items():
        assert numbers == list(range(1, len(numbers) + 1)), session[:8]


def test_a_key_file_that_is_a_folder_is_named_as_one(tmp_path) -> None:
    with pytest.raises(FacecastError, match="is a folder, not a key file"):
        ensure_key_file(tmp_path)
