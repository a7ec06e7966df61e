"""Rendered frames to files, minus Blender: RGBA PNGs and float depth EXRs.

One module owns what a frame on disk looks like, so the render handler, the cache
check, the compositor setup and any later metadata (provenance) agree on it:

* ``<folder>/NNNNNN.png`` — RGBA, 8 bits, straight alpha, rows top to bottom.
* ``<folder>/depth/NNNNNN.exr`` — one float channel in **metres** along the camera's
  view axis (what a render layer's Depth pass holds), 1e10 where there is no surface
  (``shared/depth_exr.py``; ``facecast render`` writes the same layout). The backend
  sends ``uint16`` millimetres (``depth_units: "mm"``, 0 = no surface); float depth is
  taken as metres.

Files are written through ``shared.atomic_file.write_atomic`` (a temp file beside the target,
then a rename), so a crash never leaves a half-written PNG that the sequencer would show
as garbage. No PIL in Blender: PNGs are encoded here.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..shared.atomic_file import write_atomic
from ..shared.depth_exr import (
    DEPTH_DIRNAME,
    DEPTH_SUFFIX,
    depth_metres,
    encode_depth_exr,
    exr_size,
)
from ..shared.errors import InputError


def frame_file(folder: Path, frame: int) -> Path:
    return folder / f"{frame:06d}.png"


def depth_file(folder: Path, frame: int) -> Path:
    return folder / DEPTH_DIRNAME / f"{frame:06d}{DEPTH_SUFFIX}"


def frames_on_disk(folder: Path, frames: np.ndarray | list[int]) -> list[int]:
    """The requested frames whose PNG already exists (complete: tmp files never count)."""
    return [int(f) for f in frames if frame_file(folder, int(f)).is_file()]


def _head(path: Path, n: int = 4096) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def png_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR (no decoding)."""
    head = _head(path, 24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24:
        raise InputError(f"{path.name} is not a PNG", "render the frames again")
    return struct.unpack(">II", head[16:24])


def check_sequence(folder: Path, frames: range, size: tuple[int, int]) -> None:
    """Every frame of ``frames`` has its RGBA PNG and depth EXR in ``folder``, each
    ``size`` pixels; else one InputError naming the first thing wrong and the fix."""
    if not folder.is_dir():
        raise InputError(f"The NeRF frames folder {folder} does not exist",
                         "Render to Sequencer first, or pick the folder of a render")
    missing = [f for f in frames if not frame_file(folder, f).is_file()
               or not depth_file(folder, f).is_file()]
    if missing:
        shown = ", ".join(str(f) for f in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise InputError(f"{len(missing)} of the scene's frames {frames[0]}-{frames[-1]} have "
                         f"no NeRF frame or depth in {folder} (frame {shown})",
                         "Render to Sequencer again over the scene's frame range")
    for f in frames:
        for path, read in ((frame_file(folder, f), png_size),
                           (depth_file(folder, f), lambda p: exr_size(_head(p)))):
            got = tuple(read(path))
            if got != tuple(size):
                raise InputError(f"{path.relative_to(folder)} is {got[0]}x{got[1]} pixels but "
                                 f"the scene renders {size[0]}x{size[1]}",
                                 "Render to Sequencer again at the scene's resolution")


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
                     encode_depth_exr(depth_metres(depth, depth_units)))
    path = frame_file(folder, frame)
    write_atomic(path, signed_png if signed_png is not None else encode_png(to_rgba8(rgba)))
    return path
