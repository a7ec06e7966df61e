"""Decode the PNGs the add-on writes (filter 0 rows, 8-bit or 16-bit), checking CRCs —
an independent reader for tests, so a writer bug cannot hide behind its own decoder."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def decode_png(data: bytes | Path) -> np.ndarray:
    """``[H, W, C]`` uint8 or uint16 pixels of a non-interlaced, unfiltered PNG."""
    if isinstance(data, Path):
        data = data.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert header is not None, "no IHDR"
    w, h, bits, color, _c, _f, interlace = header
    assert interlace == 0
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, -1)
    assert (raw[:, 0] == 0).all(), "rows must use filter 0"
    rows = raw[:, 1:].copy()
    pixels = rows.view(">u2").astype(np.uint16) if bits == 16 else rows
    return pixels.reshape(h, w, channels)
