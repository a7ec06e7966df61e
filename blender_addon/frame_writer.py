"""Rendered frames to files, minus Blender: RGBA PNGs and 16-bit depth PNGs.

One module owns what a frame on disk looks like, so the render handler, the cache
check and any later metadata (provenance) agree on it:

* ``<folder>/NNNNNN.png`` — RGBA, 8 bits, straight alpha, rows top to bottom.
* ``<folder>/depth/NNNNNN.png`` — one 16-bit grey channel in **millimetres** along the
  camera's view axis, 0 = no surface. The backend sends depth as ``uint16`` mm
  (``depth_units: "mm"``), which is written unchanged; float depth is taken as metres.
  Blender reads a 16-bit PNG as ``value / 65535``: in the compositor, load it with the
  Non-Color colour space and multiply by 65.535 for metres (65535 for millimetres).

Files are written to ``name.tmp`` and renamed, so a crash never leaves a half-written
PNG that the sequencer would show as garbage. No PIL in Blender: PNGs are encoded here.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .shared.errors import InputError

DEPTH_DIRNAME = "depth"
MM_PER_METRE = 1000.0
DEPTH_MAX_MM = 65535  # the largest depth a 16-bit PNG holds (65.5 m)


def frame_file(folder: Path, frame: int) -> Path:
    return folder / f"{frame:06d}.png"


def depth_file(folder: Path, frame: int) -> Path:
    return folder / DEPTH_DIRNAME / f"{frame:06d}.png"


def frames_on_disk(folder: Path, frames: np.ndarray | list[int]) -> list[int]:
    """The requested frames whose PNG already exists (complete: tmp files never count)."""
    return [int(f) for f in frames if frame_file(folder, int(f)).is_file()]


# --------------------------------------------------------------------------------------
# Pixels


def to_rgba8(pixels: np.ndarray) -> np.ndarray:
    """Frame array -> ``uint8 [H, W, 4]`` (float frames are [0, 1]; RGB gets alpha 255)."""
    a = np.asarray(pixels)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InputError(f"The backend sent a frame of shape {a.shape}",
                         "expected [H, W, 4] RGBA; update the backend")
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
        a = (a * 255.0 + 0.5).astype(np.uint8)
    if a.shape[2] == 3:
        a = np.concatenate([a, np.full((*a.shape[:2], 1), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(a)


def depth_millimetres(depth: np.ndarray, units: str | None = None) -> np.ndarray:
    """Depth as ``uint16`` millimetres (0 = no surface), whatever the backend sent.

    ``uint16`` (the backend's ``depth_units: "mm"``) passes through unchanged — scaling
    it again once turned every surface into 65535. Floats are metres unless ``units``
    says ``"mm"``; NaN, infinities and negatives become 0 (no surface) and anything
    beyond 65.535 m saturates.
    """
    a = np.asarray(depth)
    if a.ndim != 2:
        raise InputError(f"The backend sent depth of shape {a.shape}",
                         "expected [H, W]; update the backend")
    if a.dtype == np.uint16:
        return np.ascontiguousarray(a)
    if units not in (None, "m", "mm"):
        raise InputError(f"The backend sent depth in unknown units {units!r}",
                         "update the add-on or the backend (depth is sent in mm)")
    scale = 1.0 if units == "mm" else MM_PER_METRE
    mm = np.nan_to_num(a.astype(np.float64) * scale, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(mm), 0, DEPTH_MAX_MM).astype(np.uint16)


# --------------------------------------------------------------------------------------
# PNG


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes for ``uint8 [H, W, 1|3|4]`` or ``uint16 [H, W]``.

    Rows are stored top to bottom as PNG wants; the backend's frames use the same
    top-left origin (``shared/camera.py``).
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError(f"Cannot write a frame of shape {a.shape} as PNG",
                         "the backend must send [H, W, 4] RGBA frames")
    h, w, c = a.shape
    if a.dtype == np.uint16:
        bits, raw = 16, a.astype(">u2").tobytes()
    elif a.dtype == np.uint8:
        bits, raw = 8, a.tobytes()
    else:
        raise InputError(f"Cannot write {a.dtype} pixels as PNG", "send uint8 or uint16")
    color = {1: 0, 3: 2, 4: 6}[c]
    stride = w * c * bits // 8
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride)
    filtered = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, bits, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(filtered, 3)) + _chunk(b"IEND", b""))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + rename (never a half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def write_frame(folder: Path, frame: int, rgba: np.ndarray, depth: np.ndarray | None = None,
                depth_units: str | None = None, signed_png: bytes | None = None) -> Path:
    """Write one rendered frame (and its depth) into ``folder``; returns the RGBA path.

    ``signed_png``: the backend's own PNG of ``rgba`` carrying its C2PA credentials,
    written byte for byte (encoding the pixels again would break the signature).

    The depth file goes first: the RGBA file is what marks a frame as done on disk
    (:func:`frames_on_disk`), so a frame is never counted before its depth exists.
    """
    if depth is not None:
        write_atomic(depth_file(folder, frame),
                     encode_png(depth_millimetres(depth, depth_units)))
    path = frame_file(folder, frame)
    write_atomic(path, signed_png if signed_png is not None else encode_png(to_rgba8(rgba)))
    return path
