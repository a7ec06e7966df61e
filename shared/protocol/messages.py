"""Encoding and decoding of signed multipart messages.

Frames (after any ROUTER identity frames)::

    [0] b"FCST" + major version byte + MAC id byte
    [1] 32-byte MAC (BLAKE3-keyed or HMAC-SHA256) over frames 0, 2, 3, 4... (length-prefixed)
    [2] header  msgpack map: v, type, id, job, session, seq, ts, bufs
    [3] body    msgpack map
    [4..] one raw frame per array, described by header["bufs"]

Decoding checks, in order and before anything untrusted is parsed: frame count and
byte limits, protocol id and major version, signature; then the header schema, replay
(session + strictly increasing seq, timestamp window), the array descriptors.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from ..errors import ProtocolError
from .arrays import from_wire, to_wire
from .constants import (
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_TOTAL_BYTES,
    FIXED_FRAMES,
    MAJOR_VERSION,
    MAX_BODY_BYTES,
    MAX_CLOCK_SKEW_S,
    MAX_HEADER_BYTES,
    MINOR_VERSION,
    PROTOCOL_FRAME_BYTES,
    PROTOCOL_ID,
    SIGNATURE_BYTES,
)
from .shm import ShmRef
from .signing import Signer


@dataclass
class Message:
    """One protocol message; ``arrays`` are numpy arrays sent as raw frames, or
    :class:`~shared.protocol.shm.ShmRef` descriptors of payloads in shared memory
    (same-host fast path; a receiver resolves them with a ``ShmReader``)."""

    type: str
    body: dict = field(default_factory=dict)
    arrays: list[np.ndarray] = field(default_factory=list)
    job: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    session: str = ""
    seq: int = 0
    ts: float = 0.0
    version: tuple[int, int] = (MAJOR_VERSION, MINOR_VERSION)


class VersionMismatch(ProtocolError):
    """The peer speaks a major version this build does not."""

    code = "version_mismatch"

    def __init__(self, peer_major: int) -> None:
        self.peer_major = peer_major
        super().__init__(f"peer speaks Facecast protocol {peer_major}, this side speaks "
                         f"{MAJOR_VERSION}", "update the add-on and the backend to the same "
                         "Facecast release")


def _unpack(data: Any, limit: int, what: str) -> dict:
    view = memoryview(data)
    if view.nbytes > limit:
        raise ProtocolError(f"{what} is {view.nbytes} bytes (limit {limit})",
                            "send smaller messages", code="too_large")
    try:
        value = msgpack.unpackb(view, raw=False, strict_map_key=False, ext_hook=_no_ext)
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"{what} is not valid msgpack ({exc.__class__.__name__})",
                            "send messages with the Facecast client", code="malformed") from exc
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not a map", "send messages with the Facecast client",
                            code="malformed")
    return value


def _no_ext(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack extension type {code} is not allowed",
                        "send plain msgpack values", code="malformed")


class ReplayGuard:
    """Remembers the last seq per session; a repeated or older seq is a replay.

    Sessions are kept in an LRU of bounded size; a message older than the clock-skew
    window is refused outright, so forgetting an idle session cannot re-open a replay.
    """

    def __init__(self, max_sessions: int = 4096, max_skew_s: float = MAX_CLOCK_SKEW_S) -> None:
        self._last: OrderedDict[str, int] = OrderedDict()
        self._max = max_sessions
        self._skew = max_skew_s

    def check(self, session: str, seq: int, ts: float) -> None:
        now = time.time()
        if not math.isfinite(ts):
            raise ProtocolError(f"message timestamp {ts!r} is not a finite number",
                                "send messages with the Facecast client", code="replay")
        if abs(now - ts) > self._skew:
            raise ProtocolError(f"message timestamp is {now - ts:+.0f} s off this clock",
                                "check both machines' clocks (NTP)", code="replay")
        last = self._last.get(session)
        if last is not None and seq <= last:
            raise ProtocolError(f"message seq {seq} in session {session[:8]} is not after "
                                f"{last}", "this is a replayed or duplicated message",
                                code="replay")
        self._last[session] = seq
        self._last.move_to_end(session)
        while len(self._last) > self._max:
            self._last.popitem(last=False)


class Codec:
    """Signs outgoing and verifies incoming messages for one side of a connection."""

    def __init__(self, key: bytes, *, session: str | None = None, mac: int | None = None,
                 max_frames: int = DEFAULT_MAX_FRAMES,
                 max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES) -> None:
        self.signer = Signer(key, mac)
        self.protocol_frame = PROTOCOL_ID + bytes([MAJOR_VERSION, self.signer.mac])
        self.session = session or uuid.uuid4().hex
        self.max_frames = max_frames
        self.max_total_bytes = max_total_bytes
        self.replay = ReplayGuard()
        self._seq = 0

    def encode(self, msg: Message, *, session: str | None = None,
               seq: int | None = None) -> list[Any]:
        """Frames for ``msg``; fills in session, seq and timestamp. A server replying to
        a client's session passes that ``session`` and its own counter's ``seq``."""
        if session is None:
            self._seq += 1
            session, seq = self.session, self._seq
        assert seq is not None, "a session needs its own seq"
        msg.session, msg.seq, msg.ts = session, seq, time.time()
        descs, buffers = [], []
        for arr in msg.arrays:
            if isinstance(arr, ShmRef):
                descs.append(arr.descriptor())
                continue
            desc, buf = to_wire(arr)
            descs.append(desc)
            buffers.append(buf)
        header = msgpack.packb({
            "v": list(msg.version), "type": msg.type, "id": msg.id, "job": msg.job,
            "session": msg.session, "seq": msg.seq, "ts": msg.ts, "bufs": descs,
        })
        body = msgpack.packb(msg.body)
        signed = [self.protocol_frame, header, body, *buffers]
        return [self.protocol_frame, self.signer.sign(signed), header, body, *buffers]

    def decode(self, frames: Sequence[Any], *, check_replay: bool = True) -> Message:
        """Verify and parse frames (bytes or zmq.Frame); arrays are zero-copy views, and
        payloads in shared memory stay :class:`ShmRef` until a ``ShmReader`` reads them.

        ``check_replay=False`` leaves the replay check to the caller (the server first
        checks that the session belongs to the connection, so a key holder cannot
        advance another session's sequence number)."""
        if len(frames) < FIXED_FRAMES:
            raise ProtocolError(f"message has {len(frames)} frames, at least {FIXED_FRAMES} "
                                "needed", "send messages with the Facecast client",
                                code="malformed")
        if len(frames) > self.max_frames:
            raise ProtocolError(f"message has {len(frames)} frames (limit {self.max_frames})",
                                "send fewer arrays per message", code="too_large")
        views = [memoryview(_buffer(f)) for f in frames]
        total = sum(v.nbytes for v in views)
        if total > self.max_total_bytes:
            raise ProtocolError(f"message is {total} bytes (limit {self.max_total_bytes})",
                                "send smaller messages", code="too_large")
        proto = bytes(views[0])
        if len(proto) != PROTOCOL_FRAME_BYTES or proto[:4] != PROTOCOL_ID:
            raise ProtocolError("first frame is not a Facecast protocol id",
                                "this port is for the Facecast protocol", code="malformed")
        if proto[4] != MAJOR_VERSION:
            raise VersionMismatch(proto[4])
        signature = bytes(views[1])
        if len(signature) != SIGNATURE_BYTES or not self.signer.verify(
                signature, [views[0], *views[2:]], proto[5]):
            raise ProtocolError("message signature is invalid",
                                "both sides must use the same key file", code="bad_signature")
        header = _unpack(views[2], MAX_HEADER_BYTES, "header")
        body = _unpack(views[3], MAX_BODY_BYTES, "body")
        msg = _header_to_message(header, body)
        bufs = header.get("bufs")
        inline = [d for d in bufs if not _is_shm(d)] if isinstance(bufs, list) else None
        if inline is None or len(inline) != len(views) - FIXED_FRAMES:
            raise ProtocolError("header describes a different number of arrays than sent",
                                "send messages with the Facecast client", code="malformed")
        if check_replay:
            self.replay.check(msg.session, msg.seq, msg.ts)
        frames_iter = iter(views[FIXED_FRAMES:])
        msg.arrays = [ShmRef.from_descriptor(d) if _is_shm(d) else from_wire(d, next(frames_iter))
                      for d in bufs]
        return msg


def _is_shm(desc: Any) -> bool:
    return isinstance(desc, list) and len(desc) == 4


def _header_to_message(header: dict, body: dict) -> Message:
    try:
        version = header["v"]
        msg = Message(type=header["type"], body=body, job=header.get("job"), id=header["id"],
                      session=header["session"], seq=header["seq"], ts=header["ts"],
                      version=(int(version[0]), int(version[1])))
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise ProtocolError(f"header is missing or has a bad field ({exc})",
                            "send messages with the Facecast client", code="malformed") from exc
    ok = (isinstance(msg.type, str) and isinstance(msg.id, str) and isinstance(msg.session, str)
          and isinstance(msg.seq, int) and not isinstance(msg.seq, bool)
          and isinstance(msg.ts, int | float) and not isinstance(msg.ts, bool)
          and (msg.job is None or isinstance(msg.job, str)))
    if (not ok or len(msg.type) > 32 or len(msg.session) > 64 or len(msg.id) > 64
            or (msg.job and len(msg.job) > 64)):
        raise ProtocolError("header fields have wrong types or sizes",
                            "send messages with the Facecast client", code="malformed")
    return msg


def _buffer(frame: Any) -> Any:
    """Bytes-like view of a frame: zmq.Frame exposes ``.buffer`` (zero copy)."""
    return getattr(frame, "buffer", frame)


def error_body(code: str, message: str, *, retryable: bool = False, **extra: Any) -> dict:
    """Body of an ERROR reply: a stable code, a message for people and a retry hint."""
    return {"code": code, "message": message, "retryable": retryable, **extra}


def clip(value: Any, limit: int = 64) -> str:
    """``repr`` of an untrusted value, cut to ``limit`` characters for replies and logs."""
    if isinstance(value, str | bytes):
        text = repr(value[:limit + 1])
    elif value is None or isinstance(value, bool | int | float):
        text = repr(value)
    else:  # a list or map: name its type, never render an untrusted structure
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "…"
