"""Hostile traffic for the fuzz bench and the tests: a raw DEALER that sends whatever it
is given, and generators of unsigned junk and of signed-but-hostile messages.

Unsigned junk is what anyone who can reach the port can send; the signed classes are
what a client holding the key can send (a buggy or compromised add-on). Neither may
crash, freeze or bloat the server, and neither may take over another client's session.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator

import msgpack
import numpy as np
import zmq

from shared.protocol import Codec, Message, MsgType
from shared.protocol import shm as shm_mod
from shared.protocol.shm import ShmArena, ShmRef


class RawPeer:
    """A bare DEALER: sends whatever frames it is given and reads raw replies."""

    def __init__(self, endpoint: str, key: bytes, *, session: str | None = None,
                 rcvhwm: int | None = None) -> None:
        """``rcvhwm``: messages ZeroMQ may read ahead for us (1: a reader that stops
        reading stops the stream at the server, as a frozen client would)."""
        self.codec = Codec(key, session=session)
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, 5000)
        if rcvhwm is not None:
            self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
            self.sock.setsockopt(zmq.RCVBUF, 256 * 1024)
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
        ("nan_param", lambda: submit("synthetic_frames", {"delay_s": float("nan")})),
        ("huge_int_param", lambda: submit("synthetic_frames", {"n_frames": 2**63 - 1})),
        ("wrong_type_param", lambda: submit("synthetic_frames", {"delay_s": [1]})),
        ("animate_overflow", lambda: submit("animate", {"first_frame": -2**63,
                                                        "sample_rate": 16000},
                                            arrays=[np.zeros(16000, np.float32)])),
        ("credit_huge", lambda: submit("synthetic_frames", {"n_frames": 1}, credit=2**63)),
        ("credit_negative", lambda: submit("synthetic_frames", {"n_frames": 1}, credit=-1)),
        ("credit_bool", lambda: submit("synthetic_frames", {"n_frames": 1}, credit=True)),
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


# -- byte limits: a stalled reader of big frames, and shared-memory payload abuse -----

@dataclasses.dataclass
class StallResult:
    frames: int
    received: int = 0
    in_order: bool = True
    finals: list[str] = dataclasses.field(default_factory=list)
    rss_before: int = 0
    rss_stalled: int = 0  # the peak while the reader was stalled
    rss_peak: int = 0  # the peak over the whole stream
    error: str = ""
    frame_bytes: int = 0

    @property
    def frame_mb(self) -> float:
        return self.frame_bytes / 1e6

    @property
    def growth_mb(self) -> float:
        return (self.rss_peak - self.rss_before) / 1e6

    @property
    def stalled_growth_mb(self) -> float:
        return (self.rss_stalled - self.rss_before) / 1e6


def stalled_reader(endpoint: str, key: bytes, rss: Callable[[], int], *, frames: int,
                       frame_bytes: int, stall_s: float) -> StallResult:
    """A client asks for ``frames`` frames of ``frame_bytes`` at credit 2^63, reads one,
    stops reading for ``stall_s`` (the server's memory sampled meanwhile), then reads the
    rest: all must arrive, in order, with one DONE."""
    out = StallResult(frames, rss_before=rss(), frame_bytes=frame_bytes // 8192 * 8192)
    out.rss_peak = out.rss_stalled = out.rss_before
    peer = RawPeer(endpoint, key, rcvhwm=1)
    try:
        peer.send(peer.hello_frames())
        if peer.recv(10) is None:
            raise RuntimeError("the backend did not answer HELLO")
        peer.send(peer.codec.encode(Message(MsgType.SUBMIT, {
            "kind": "synthetic_frames", "credit": 2**63,
            "params": {"n_frames": frames, "shape": [frame_bytes // 8192, 8192]}},
            job="big")))
        deadline = time.monotonic() + 120 + stall_s
        last_ping = time.monotonic()
        while not out.finals and time.monotonic() < deadline:
            if time.monotonic() - last_ping > 1:
                peer.send(peer.codec.encode(Message(MsgType.PING)))
                last_ping = time.monotonic()
            msg = peer.recv(1.0)
            if msg is None or msg.job != "big":
                continue
            if msg.type == MsgType.FRAME:
                pixels = msg.arrays[0] if msg.arrays else np.zeros(1, np.uint8)
                out.in_order &= (msg.body.get("index") == out.received
                                 and int(pixels.flat[0]) == int(pixels.flat[-1])
                                 == out.received % 251)
                out.received += 1
                if out.received == 1:  # stall, pinging so the server keeps the session
                    until = time.monotonic() + stall_s
                    while time.monotonic() < until:
                        out.rss_stalled = max(out.rss_stalled, rss())
                        peer.send(peer.codec.encode(Message(MsgType.PING)))
                        time.sleep(0.1)
                out.rss_peak = max(out.rss_peak, out.rss_stalled, rss())
            elif msg.type in MsgType.FINAL_TYPES:
                out.finals.append(msg.type)
                out.error = str(msg.body.get("message", ""))
    finally:
        peer.close()
    return out


def shm_session(endpoint: str, key: bytes) -> RawPeer:
    """A raw peer that negotiated the same-host fast path (its probe read back)."""
    peer = RawPeer(endpoint, key)
    probe, _ = shm_mod.write_probe()
    try:
        peer.send(peer.hello_frames(shm={"probe": probe}))
        welcome = peer.recv(10)
    finally:
        shm_mod.remove(probe)
    if welcome is None or "shm" not in welcome.body:
        peer.close()
        raise RuntimeError("the backend did not take the shared-memory fast path")
    return peer


def shm_abuse(peer: RawPeer, arena: ShmArena, segment_bytes: int = 1 << 20,
              ) -> list[tuple[str, list, str]]:
    """``(class, frames, job)`` of SUBMITs whose shared-memory payloads the server must
    refuse with an error reply for ``job``; all but the wrong MAC (a 64 KiB payload the
    server must read to check) before reading or allocating anything. The size abuses
    use a segment of ``segment_bytes``."""
    small = arena.share(np.full(64 * 1024, 7, np.uint8))
    big = arena.share(np.full(segment_bytes, 7, np.uint8))
    if small is None or big is None:
        raise RuntimeError("could not create shared-memory segments for the bench")
    uid = os.geteuid()

    def named(segment: str) -> ShmRef:
        return dataclasses.replace(small, segment=segment)

    def declared(nbytes: int) -> ShmRef:
        return dataclasses.replace(big, shape=(nbytes,), nbytes=nbytes)

    cases = {
        "wrong MAC": [dataclasses.replace(small, mac=b"\0" * 32)],
        "short segment (declared 2x its size)": [declared(2 * segment_bytes)],
        "declared 2^40 bytes": [declared(2**40)],
        "another user's segment": [named(f"facecast-{uid + 1}-0-1-{'0' * 32}")],
        "path-like name ../../etc/passwd": [named("../../etc/passwd")],
        "one segment named 4 times": [big] * 4,
    }
    out = []
    for i, (name, arrays) in enumerate(cases.items()):
        job = f"shm-abuse-{i}"
        out.append((name, peer.codec.encode(Message(MsgType.SUBMIT, {
            "kind": "synthetic_frames", "params": {"n_frames": 1, "pattern": "echo"}}, arrays,
            job=job)), job))
    return out


def not_negotiated_shm(peer: RawPeer) -> tuple[str, list, str]:
    """A SUBMIT naming a segment on a session that never negotiated shared memory."""
    return "shared memory not negotiated", _fake_shm_submit(peer.codec, "shm-nn"), "shm-nn"
