"""Hostile traffic for the fuzz bench and the tests: a raw DEALER that sends whatever it
is given, and generators of unsigned junk and of signed-but-hostile messages.

Unsigned junk is what anyone who can reach the port can send; the signed classes are
what a client holding the key can send (a buggy or compromised add-on). Neither may
crash, freeze or bloat the server, and neither may take over another client's session.
"""

from __future__ import annotations

import itertools
import random
import secrets
from collections.abc import Callable, Iterator

import msgpack
import numpy as np
import zmq

from shared.protocol import Codec, Message, MsgType


class RawPeer:
    """A bare DEALER: sends whatever frames it is given and reads raw replies."""

    def __init__(self, endpoint: str, key: bytes, *, session: str | None = None) -> None:
        self.codec = Codec(key, session=session)
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, 5000)
        self.sock.connect(endpoint)

    def hello_frames(self, **body) -> list:
        return self.codec.encode(Message(MsgType.HELLO, {"versions": [[1, 0]], "client": "raw",
                                                         **body}))

    def send(self, frames: list) -> None:
        self.sock.send_multipart([bytes(memoryview(f)) for f in frames])

    def recv(self, timeout_s: float = 2.0) -> Message | None:
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        return self.codec.decode(self.sock.recv_multipart())

    def close(self) -> None:
        self.sock.close(linger=0)


def resign(codec: Codec, frames: list) -> list:
    """Frames with a valid MAC over whatever they now contain."""
    frames = [bytes(memoryview(f)) for f in frames]
    frames[1] = codec.signer.sign([frames[0], *frames[2:]])
    return frames


def unsigned_junk(seed: int = 0) -> Iterator[list[bytes]]:
    """Endless junk anyone can send: garbage, wrong ids, forged MACs, bad counts."""
    rng = random.Random(seed)
    kinds: list[Callable[[], list[bytes]]] = [
        lambda: [rng.randbytes(rng.randint(0, 64))],
        lambda: [b"FCST\x01\x02", rng.randbytes(32), b"\xc1", b"\xc1"],
        lambda: [b"FCST\x01\x02", b"\x00" * 32, msgpack.packb({"type": "ping"}), b"\x80"],
        lambda: [b"FCST\x09\x02", b"\x00" * 32, b"\x80", b"\x80"],  # another major version
        lambda: [b"", b"", b"", b"", b""],
        lambda: [b"FCST\x01\x07", rng.randbytes(32), b"\x80", b"\x80"],  # unknown MAC id
        lambda: [b"x"] * rng.randint(70, 120),  # too many frames
        lambda: [b"FCST\x01\x02", rng.randbytes(32), rng.randbytes(4096), rng.randbytes(4096)],
    ]
    while True:
        yield rng.choice(kinds)()


def signed_hostile(peer: RawPeer, victim_session: str | None = None,
                   seed: int = 0) -> Iterator[tuple[str, list]]:
    """Endless ``(class, frames)`` a key holder can send; all signed and well framed."""
    rng = random.Random(seed)
    codec = peer.codec
    replayable = codec.encode(Message(MsgType.PING))
    other = Codec(secrets.token_bytes(32))  # a wrong key: forged MACs
    job_ids = (f"h{i}" for i in itertools.count())

    def submit(kind, params, credit=8, arrays=()):
        return codec.encode(Message(MsgType.SUBMIT, {"kind": kind, "params": params,
                                                     "credit": credit}, list(arrays),
                                    job=next(job_ids)))

    def header_edit(**fields):
        frames = codec.encode(Message(MsgType.PING))
        header = msgpack.unpackb(frames[2])
        header.update(fields)
        frames[2] = msgpack.packb(header)
        return resign(codec, frames)

    classes: list[tuple[str, Callable[[], list]]] = [
        ("replay", lambda: replayable),
        ("nan_ts", lambda: header_edit(ts=float("nan"), seq=rng.randint(1 << 40, 1 << 50))),
        ("inf_ts", lambda: header_edit(ts=float("inf"), seq=rng.randint(1 << 40, 1 << 50))),
        ("bad_header", lambda: header_edit(type=5, seq="x")),
        ("forged", lambda: other.encode(Message(MsgType.PING))),
        ("not_a_request", lambda: codec.encode(Message(MsgType.DONE, job="x"))),
        ("huge_kind", lambda: submit("k" * 200_000, {})),
        ("nan_param", lambda: submit("stream_test", {"delay_s": float("nan")})),
        ("huge_int_param", lambda: submit("stream_test", {"n_frames": 2**63 - 1})),
        ("wrong_type_param", lambda: submit("stream_test", {"delay_s": [1]})),
        ("animate_overflow", lambda: submit("animate", {"first_frame": -2**63,
                                                        "sample_rate": 16000},
                                            arrays=[np.zeros(16000, np.float32)])),
        ("credit_huge", lambda: submit("stream_test", {"n_frames": 1}, credit=2**63)),
        ("credit_negative", lambda: submit("stream_test", {"n_frames": 1}, credit=-1)),
        ("credit_bool", lambda: submit("stream_test", {"n_frames": 1}, credit=True)),
        ("grant_huge", lambda: codec.encode(Message(MsgType.CREDIT, {"n": 2**63},
                                                    job="nope"))),
        ("release_garbage", lambda: codec.encode(Message(MsgType.RELEASE, {
            "slots": [[rng.randint(0, 9), rng.randint(0, 9)]] * 100}))),
        ("shm_not_negotiated", lambda: _fake_shm_submit(codec, next(job_ids))),
        ("no_session", lambda: _foreign_session(codec)),
    ]
    if victim_session is not None:
        classes.append(("takeover_hello", lambda: _takeover(codec, victim_session)))
    while True:
        name, make = rng.choice(classes)
        yield name, make()


def _fake_shm_submit(codec: Codec, job: str) -> list:
    frames = codec.encode(Message(MsgType.SUBMIT, {"kind": "info", "params": {}}, job=job))
    header = msgpack.unpackb(frames[2])
    header["bufs"] = [["|u1", [4], 4, ["facecast-0-0-0-" + "0" * 32, 0, 1, b"\0" * 32]]]
    frames[2] = msgpack.packb(header)
    return resign(codec, frames)


def _foreign_session(codec: Codec) -> list:
    """A request from a session id this connection never said HELLO with."""
    frames = codec.encode(Message(MsgType.PING))
    header = msgpack.unpackb(frames[2])
    header["session"] = f"{random.getrandbits(128):032x}"
    frames[2] = msgpack.packb(header)
    return resign(codec, frames)


def _takeover(codec: Codec, victim: str) -> list:
    """HELLO, and a CANCEL, with another client's session id."""
    frames = codec.encode(Message(MsgType.HELLO, {"versions": [[1, 0]]}))
    header = msgpack.unpackb(frames[2])
    header["session"] = victim
    header["seq"] = random.getrandbits(40) + (1 << 41)
    frames[2] = msgpack.packb(header)
    return resign(codec, frames)
