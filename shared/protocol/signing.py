"""Message authentication over every frame of a message.

Two MACs, named by one byte in the protocol frame so the receiver knows which to check
*before* parsing anything:

* ``MAC_BLAKE3`` (default): BLAKE3 in keyed mode, a PRF designed for use as a MAC.
  ~6.4 GB/s on one core here, so signing a 512² float16 RGBA stream (2 MiB per frame)
  costs ~0.3 ms per frame on each side.
* ``MAC_HMAC_SHA256``: the standard library fallback (~1.8 GB/s with SHA-NI). Measured
  with ``facecast bench protocol``, it held the stream to ~16% of raw ZeroMQ on 2 cores
  because sender and receiver each hash every byte; it remains accepted everywhere and
  is used when the ``blake3`` wheel is unavailable.

Each frame is fed with an 8-byte length prefix so frame boundaries are authenticated.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable
from typing import Any

from .constants import SIGNATURE_BYTES

try:  # a compiled wheel; bundled with the Blender add-on for every platform
    import blake3 as _blake3
except ImportError:  # pragma: no cover - exercised on platforms without the wheel
    _blake3 = None

MAC_HMAC_SHA256 = 1
MAC_BLAKE3 = 2
MAC_NAMES = {MAC_HMAC_SHA256: "hmac-sha256", MAC_BLAKE3: "blake3-keyed"}
_LEN = struct.Struct("<Q")


def available_macs() -> tuple[int, ...]:
    return (MAC_BLAKE3, MAC_HMAC_SHA256) if _blake3 is not None else (MAC_HMAC_SHA256,)


def default_mac() -> int:
    return available_macs()[0]


class Signer:
    """Signs and verifies message frames with one shared secret key."""

    def __init__(self, key: bytes, mac: int | None = None) -> None:
        if len(key) < 16:
            raise ValueError("signing key must be at least 16 bytes")
        self.mac = default_mac() if mac is None else mac
        if self.mac not in available_macs():
            raise ValueError(f"MAC {MAC_NAMES.get(self.mac, self.mac)} is not available")
        # BLAKE3's keyed mode takes exactly 32 bytes: derive them from the key file's key.
        self._b3_key = hashlib.sha256(b"facecast-blake3-key" + key).digest()
        self._hmac = hmac.new(key, digestmod=hashlib.sha256)

    def sign(self, frames: Iterable[Any], mac: int | None = None) -> bytes:
        mac = self.mac if mac is None else mac
        if mac == MAC_BLAKE3 and _blake3 is not None:
            h = _blake3.blake3(key=self._b3_key)
        elif mac == MAC_HMAC_SHA256:
            h = self._hmac.copy()
        else:
            raise ValueError(f"unknown MAC id {mac}")
        for frame in frames:
            view = memoryview(frame)
            h.update(_LEN.pack(view.nbytes))
            h.update(view)
        digest = h.digest()
        assert len(digest) == SIGNATURE_BYTES
        return digest

    def verify(self, signature: bytes, frames: Iterable[Any], mac: int) -> bool:
        if mac not in available_macs():
            return False
        return hmac.compare_digest(signature, self.sign(frames, mac))
