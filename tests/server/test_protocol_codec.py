"""Codec-level checks: what the wire format accepts and refuses (no sockets)."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest

from shared.errors import ProtocolError
from shared.protocol import Codec, Message, VersionMismatch, from_wire, to_wire
from shared.protocol.signing import MAC_BLAKE3, MAC_HMAC_SHA256, available_macs

KEY = b"k" * 32


def roundtrip(msg: Message, sender: Codec | None = None, receiver: Codec | None = None):
    sender = sender or Codec(KEY)
    receiver = receiver or Codec(KEY)
    return receiver.decode(sender.encode(msg))


@pytest.mark.parametrize("dtype", ["uint8", "float16", "float32", "int64", "bool", "uint16"])
def test_arrays_roundtrip_every_allowed_dtype(dtype: str) -> None:
    arr = (np.arange(24).reshape(2, 3, 4) % 2).astype(dtype)
    out = roundtrip(Message("frame", {"i": 1}, [arr, arr[:, ::2]], job="j"))
    assert out.type == "frame" and out.body == {"i": 1} and out.job == "j"
    np.testing.assert_array_equal(out.arrays[0], arr)
    np.testing.assert_array_equal(out.arrays[1], arr[:, ::2])  # made contiguous on send
    assert not out.arrays[0].flags.writeable


def test_big_endian_is_converted_to_little() -> None:
    arr = np.arange(5, dtype=">f4")
    desc, _ = to_wire(arr)
    assert desc[0] == "<f4"
    np.testing.assert_array_equal(roundtrip(Message("x", arrays=[arr])).arrays[0], arr)


@pytest.mark.parametrize("mac", [MAC_BLAKE3, MAC_HMAC_SHA256])
def test_both_macs_verify_and_are_accepted_by_a_default_receiver(mac: int) -> None:
    if mac not in available_macs():
        pytest.skip("blake3 wheel not installed")
    out = roundtrip(Message("x", {"a": 1}), sender=Codec(KEY, mac=mac))
    assert out.body == {"a": 1}


def test_object_dtype_refused_on_send() -> None:
    with pytest.raises(ProtocolError, match="cannot be sent"):
        to_wire(np.array([object()]))


def test_descriptor_mismatch_refused() -> None:
    with pytest.raises(ProtocolError, match="does not match"):
        from_wire(["<f4", [2, 2], 8], b"\0" * 8)
    with pytest.raises(ProtocolError, match="not allowed"):
        from_wire(["|O", [1], 8], b"\0" * 8)
    with pytest.raises(ProtocolError, match="frame has"):
        from_wire(["<f4", [2], 8], b"\0" * 4)


def test_any_flipped_byte_breaks_the_signature() -> None:
    frames = Codec(KEY).encode(Message("x", {"a": 1}, [np.ones(16, np.float32)]))
    for index in (2, 3, 4):
        bad = [bytes(f) for f in frames]
        b = bytearray(bad[index])
        b[len(b) // 2] ^= 1
        bad[index] = bytes(b)
        with pytest.raises(ProtocolError, match="signature"):
            Codec(KEY).decode(bad)


def test_wrong_key_refused() -> None:
    frames = Codec(b"a" * 32).encode(Message("x"))
    with pytest.raises(ProtocolError, match="signature"):
        Codec(b"b" * 32).decode(frames)


def test_replayed_message_refused() -> None:
    receiver = Codec(KEY)
    frames = Codec(KEY).encode(Message("x"))
    receiver.decode(frames)
    with pytest.raises(ProtocolError, match="replayed"):
        receiver.decode(frames)


def test_stale_timestamp_refused() -> None:
    sender, receiver = Codec(KEY), Codec(KEY)
    msg = Message("x")
    frames = sender.encode(msg)
    header = msgpack.unpackb(frames[2])
    header["ts"] = time.time() - 3600
    frames[2] = msgpack.packb(header)
    frames[1] = sender.signer.sign([frames[0], *frames[2:]])
    with pytest.raises(ProtocolError, match="timestamp"):
        receiver.decode(frames)


def test_truncated_multipart_refused() -> None:
    frames = Codec(KEY).encode(Message("x", arrays=[np.ones(4, np.uint8)] * 2))
    with pytest.raises(ProtocolError):
        Codec(KEY).decode(frames[:-1])
    with pytest.raises(ProtocolError, match="at least"):
        Codec(KEY).decode(frames[:2])


def test_limits_refuse_before_reading() -> None:
    frames = Codec(KEY).encode(Message("x", arrays=[np.ones(10, np.uint8)] * 10))
    with pytest.raises(ProtocolError, match="frames"):
        Codec(KEY, max_frames=8).decode(frames)
    with pytest.raises(ProtocolError, match="bytes"):
        Codec(KEY, max_total_bytes=50).decode(frames)


def test_future_major_version_is_a_version_mismatch() -> None:
    frames = Codec(KEY).encode(Message("x"))
    frames[0] = b"FCST" + bytes([2, frames[0][5]])
    with pytest.raises(VersionMismatch) as info:
        Codec(KEY).decode(frames)
    assert "2" in info.value.message and "update" in info.value.message


def test_garbage_refused_without_exceptions_leaking() -> None:
    with pytest.raises(ProtocolError):
        Codec(KEY).decode([b"hello", b"x" * 32, b"\xc1\xc1", b"", b""])
    with pytest.raises(ProtocolError):
        Codec(KEY).decode([b"\x00" * 6, b"x", b"y", b"z"])


@pytest.mark.parametrize("shape", [(0, 8), (3, 0, 2), (), (0,)])
def test_empty_and_zero_dimensional_arrays_roundtrip(shape) -> None:
    arr = np.zeros(shape, np.float32) if shape else np.float32(2.5)
    out = roundtrip(Message("frame", arrays=[arr, np.asarray(arr)]))
    for got in out.arrays:
        assert got.shape == np.shape(arr) and got.dtype == np.float32
        np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize("shape", [[2**40, 2**40, 2**40], [2**62, 4], [2**63, 2]])
def test_a_shape_whose_size_overflows_int64_is_refused(shape) -> None:
    """numpy's int64 product wrapped to 0, so an empty frame matched a giant shape and
    the reshape raised outside the protocol's errors (a crash in a client's poll)."""
    sender = Codec(KEY)
    frames = [bytes(memoryview(f)) for f in sender.encode(Message("frame", arrays=[
        np.zeros(0, np.uint8)]))]
    header = msgpack.unpackb(frames[2])
    header["bufs"] = [["|u1", shape, 0]]
    frames[2] = msgpack.packb(header)
    frames[1] = sender.signer.sign([frames[0], *frames[2:]])
    with pytest.raises(ProtocolError, match="does not match shape"):
        Codec(KEY).decode(frames)
