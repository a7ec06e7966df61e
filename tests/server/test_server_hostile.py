"""Hostile and broken input to a real server: each is dropped or refused with a clear
reply, and afterwards the server still answers a normal request."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from backend.server.launcher import BackendProcess
from shared.protocol import Codec, ErrorCode, Message, MsgType, load_key
from tests.protocol_helpers import RawPeer, assert_server_healthy, resign


@pytest.fixture
def small_backend(key_file):
    with BackendProcess(key_file=key_file, extra_args=[
            "--max-frame-bytes", "65536", "--max-frames", "8",
            "--max-total-bytes", "200000"]) as proc:
        yield proc


@pytest.fixture
def peer(small_backend, key_file):
    p = RawPeer(small_backend.endpoint, load_key(key_file))
    p.send(p.hello_frames())
    assert p.recv().type == MsgType.WELCOME
    yield p
    p.close()


def _check(backend, key_file, peer: RawPeer) -> None:
    assert peer.recv(timeout_s=0.5) is None, "a hostile message got a reply it should not"
    assert_server_healthy(backend.endpoint, key_file)
    assert backend.proc.poll() is None, "server died"


def test_forged_signature(small_backend, key_file, peer) -> None:
    forger = Codec(b"x" * 32, session=peer.codec.session)
    peer.send(forger.encode(Message(MsgType.SUBMIT, {"kind": "info"}, job="f1")))
    _check(small_backend, key_file, peer)
    assert "signature" in small_backend.log_tail()


def test_replayed_message(small_backend, key_file, peer) -> None:
    frames = peer.codec.encode(Message(MsgType.SUBMIT, {"kind": "synthetic_frames",
                                                        "params": {"n_frames": 1}}, job="r1"))
    peer.send(frames)
    replies = [peer.recv() for _ in range(4)]
    assert [m.type for m in replies] == ["accepted", "frame", "progress", "done"]
    peer.send(frames)
    _check(small_backend, key_file, peer)
    assert "replay" in small_backend.log_tail()


def test_oversized_frame(small_backend, key_file, peer) -> None:
    big = np.zeros(100_000, np.uint8)  # > --max-frame-bytes: ZeroMQ cuts the peer off
    peer.send(peer.codec.encode(Message(MsgType.SUBMIT, {"kind": "info"}, [big], job="o1")))
    _check(small_backend, key_file, peer)


def test_too_many_frames(small_backend, key_file, peer) -> None:
    arrays = [np.zeros(4, np.uint8)] * 10
    peer.send(peer.codec.encode(Message(MsgType.SUBMIT, {"kind": "info"}, arrays, job="t1")))
    _check(small_backend, key_file, peer)
    assert "frames (limit 8)" in small_backend.log_tail()


def test_too_many_total_bytes(small_backend, key_file, peer) -> None:
    arrays = [np.zeros(60_000, np.uint8)] * 4
    peer.send(peer.codec.encode(Message(MsgType.SUBMIT, {"kind": "info"}, arrays, job="t2")))
    _check(small_backend, key_file, peer)
    assert "limit 200000" in small_backend.log_tail()


def test_wrong_dtype(small_backend, key_file, peer) -> None:
    frames = peer.codec.encode(Message(MsgType.SUBMIT, {"kind": "info"},
                                       [np.zeros(2, np.float64)], job="d1"))
    header = msgpack.unpackb(frames[2])
    header["bufs"][0][0] = "|O"
    frames[2] = msgpack.packb(header)
    peer.send(resign(peer.codec, frames))
    _check(small_backend, key_file, peer)
    assert "not allowed" in small_backend.log_tail()


def test_truncated_multipart(small_backend, key_file, peer) -> None:
    frames = peer.codec.encode(Message(MsgType.SUBMIT, {"kind": "info"},
                                       [np.zeros(4, np.uint8)] * 2, job="tr"))
    peer.send(frames[:-1])
    _check(small_backend, key_file, peer)


@pytest.mark.parametrize("frames", [
    [b"garbage"],
    [b"FCST\x01\x02", b"\x00" * 32, b"\xc1", b"\xc1"],
    [b"", b"", b"", b"", b""],
    [bytes(range(256))] * 5,
])
def test_garbage_bytes(small_backend, key_file, peer, frames) -> None:
    peer.send(frames)
    _check(small_backend, key_file, peer)


def test_signed_but_malformed_header(small_backend, key_file, peer) -> None:
    frames = peer.codec.encode(Message(MsgType.PING))
    frames[2] = msgpack.packb({"type": 5, "seq": "x"})
    peer.send(resign(peer.codec, frames))
    _check(small_backend, key_file, peer)


def test_major_version_mismatch_gets_a_clear_reply(small_backend, key_file, peer) -> None:
    frames = peer.codec.encode(Message(MsgType.PING))
    frames[0] = b"FCST" + bytes([9, frames[0][5]])
    peer.send(resign(peer.codec, frames))
    reply = peer.recv()
    assert reply is not None and reply.type == MsgType.ERROR
    assert reply.body["code"] == ErrorCode.VERSION_MISMATCH and "9" in reply.body["message"]
    assert_server_healthy(small_backend.endpoint, key_file)


def test_hello_with_no_common_version(small_backend, key_file, peer) -> None:
    peer.send(peer.codec.encode(Message(MsgType.HELLO, {"versions": [[7, 0]]})))
    reply = peer.recv()
    assert reply.type == MsgType.ERROR and reply.body["code"] == ErrorCode.VERSION_MISMATCH
    assert reply.body["supported"] == [[1, 0]]
    assert_server_healthy(small_backend.endpoint, key_file)


def test_request_without_hello_is_told_to_say_hello(small_backend, key_file) -> None:
    p = RawPeer(small_backend.endpoint, load_key(key_file))
    p.send(p.codec.encode(Message(MsgType.SUBMIT, {"kind": "info"}, job="nh")))
    reply = p.recv()
    p.close()
    assert reply.type == MsgType.ERROR and reply.body["code"] == ErrorCode.NO_SESSION
    assert reply.job == "nh"
    assert_server_healthy(small_backend.endpoint, key_file)


def test_server_reply_type_sent_as_request(small_backend, key_file, peer) -> None:
    peer.send(peer.codec.encode(Message(MsgType.DONE, {}, job="x")))
    reply = peer.recv()
    assert reply.type == MsgType.ERROR and reply.body["code"] == ErrorCode.BAD_REQUEST
    assert_server_healthy(small_backend.endpoint, key_file)
