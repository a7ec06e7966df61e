"""Depth frames as OpenEXR files that Blender reads as metres (pure numpy + zlib).

The one depth layout of a rendered sequence, written by ``facecast render`` and by the
add-on alike: ``<folder>/depth/NNNNNN.exr`` beside ``<folder>/NNNNNN.png``, one 32-bit
float channel ``Y`` per pixel holding the **planar distance in metres** along the
camera's view axis — exactly what a Blender render layer's Depth (Z) pass holds, so the
compositor's Z Combine takes it as it is, with no Map Range. Where the subject has no
surface the value is :data:`SKY_DEPTH` (1e10 m, Blender's own Z for the empty
background), so a pixel without a head never occludes CG.

The encoder writes a single-part scanline EXR with ZIP compression (16 scanlines per
block, the byte split and delta predictor of the OpenEXR spec, then zlib), falling back
to raw bytes for a block that does not shrink, as the spec allows. Blender, OpenEXR and
OpenCV read it. No dependency: the add-on runs inside Blender, the CLI in plain Python.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from .errors import InputError

#: Depth of "no surface": far beyond any scene, the value Blender's Z pass gives the sky.
SKY_DEPTH = 1.0e10
#: The backend's ``depth_units: "mm"`` frames use 0 for "no surface".
MM_PER_METRE = 1000.0
DEPTH_DIRNAME = "depth"
DEPTH_SUFFIX = ".exr"

_MAGIC = b"\x76\x2f\x31\x01"
_ZIP = 3  # ZIP_COMPRESSION: zlib over 16 scanlines
_LINES = 16
_FLOAT = 2  # pixel type FLOAT (32 bit)


def depth_metres(depth: np.ndarray, units: str | None = None) -> np.ndarray:
    """Depth as float32 metres with :data:`SKY_DEPTH` where there is no surface.

    ``uint16`` (or ``units="mm"``) is millimetres with 0 = no surface, what the backend
    sends; floats are metres with 0, NaN, infinities and negatives = no surface.
    """
    a = np.asarray(depth)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError(f"depth of shape {a.shape} is not one image",
                         "send depth as [H, W]; update the backend")
    if units not in (None, "m", "mm"):
        raise InputError(f"depth in unknown units {units!r}",
                         "send depth in mm (uint16) or metres (float); update the backend")
    scale = 1.0 / MM_PER_METRE if (a.dtype == np.uint16 or units == "mm") else 1.0
    m = a.astype(np.float64) * scale
    m = np.where(np.isfinite(m) & (m > 0), m, SKY_DEPTH)
    return np.ascontiguousarray(m, dtype=np.float32)


def _attr(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _zip_block(raw: bytes) -> bytes:
    """OpenEXR ZIP: even bytes then odd bytes, delta-coded, zlib; raw if no smaller."""
    b = np.frombuffer(raw, np.uint8)
    split = np.concatenate([b[0::2], b[1::2]]).astype(np.int16)
    delta = split.copy()
    delta[1:] = (split[1:] - split[:-1] + 128) & 0xFF
    packed = zlib.compress(delta.astype(np.uint8).tobytes(), 6)
    return packed if len(packed) < len(raw) else raw


def encode_depth_exr(metres: np.ndarray) -> bytes:
    """EXR file bytes of ``float32 [H, W]`` metres, rows top to bottom."""
    d = np.ascontiguousarray(np.asarray(metres, dtype="<f4"))
    if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] < 1:
        raise InputError(f"cannot write depth of shape {d.shape} as EXR", "pass [H, W]")
    h, w = d.shape
    window = struct.pack("<iiii", 0, 0, w - 1, h - 1)
    channels = b"Y\0" + struct.pack("<iB3xii", _FLOAT, 0, 1, 1) + b"\0"
    header = (_attr("channels", "chlist", channels)
              + _attr("compression", "compression", bytes([_ZIP]))
              + _attr("dataWindow", "box2i", window)
              + _attr("displayWindow", "box2i", window)
              + _attr("lineOrder", "lineOrder", b"\0")
              + _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
              + _attr("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
              + _attr("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0")
    head = _MAGIC + struct.pack("<i", 2) + header
    blocks = []
    for y in range(0, h, _LINES):
        data = _zip_block(d[y:y + _LINES].tobytes())
        blocks.append(struct.pack("<ii", y, len(data)) + data)
    offset = len(head) + 8 * len(blocks)
    table = []
    for block in blocks:
        table.append(struct.pack("<Q", offset))
        offset += len(block)
    return head + b"".join(table) + b"".join(blocks)


def _header(data: bytes) -> tuple[dict[str, bytes], int]:
    """The header attributes of an EXR file's bytes and where the header ends."""
    if data[:4] != _MAGIC:
        raise InputError("not an OpenEXR file", "render the frames again")
    pos, attrs = 8, {}
    try:
        while data[pos] != 0:
            end = data.index(b"\0", pos)
            end2 = data.index(b"\0", end + 1)
            (size,) = struct.unpack_from("<i", data, end2 + 1)
            attrs[data[pos:end].decode("latin-1")] = data[end2 + 5:end2 + 5 + size]
            pos = end2 + 5 + size
    except (IndexError, ValueError, struct.error) as exc:
        raise InputError("the EXR header is cut short", "render the frames again") from exc
    if "dataWindow" not in attrs:
        raise InputError("the EXR header has no dataWindow", "render the frames again")
    return attrs, pos + 1


def exr_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of an EXR from its first bytes (the header)."""
    attrs, _ = _header(data)
    x0, y0, x1, y1 = struct.unpack("<iiii", attrs["dataWindow"])
    return x1 - x0 + 1, y1 - y0 + 1


def decode_depth_exr(data: bytes) -> np.ndarray:
    """``float32 [H, W]`` of a file :func:`encode_depth_exr` wrote (one FLOAT channel,
    ZIP or no compression); anything else is an InputError naming what differs."""
    attrs, pos = _header(data)
    x0, y0, x1, y1 = struct.unpack("<iiii", attrs["dataWindow"])
    w, h = x1 - x0 + 1, y1 - y0 + 1
    comp = attrs["compression"][0]
    chans = attrs["channels"]
    name_end = chans.index(b"\0")
    if len(chans) != name_end + 18 or comp not in (0, _ZIP) \
            or struct.unpack_from("<i", chans, name_end + 1)[0] != _FLOAT:
        raise InputError("the depth EXR is not one float channel (ZIP or raw)",
                         "write depth with Facecast's depth_exr")
    lines = _LINES if comp == _ZIP else 1
    n_blocks = -(-h // lines)
    offsets = struct.unpack_from(f"<{n_blocks}Q", data, pos)
    out = np.empty((h, w), np.float32)
    for off in offsets:
        y, size = struct.unpack_from("<ii", data, off)
        rows = min(lines, h - (y - y0))
        raw = data[off + 8:off + 8 + size]
        if size < rows * w * 4:
            delta = np.frombuffer(zlib.decompress(raw), np.uint8).astype(np.int64)
            split = (np.cumsum(np.concatenate([[delta[0]], delta[1:] - 128])) & 0xFF)
            half = (len(split) + 1) // 2
            b = np.empty(len(split), np.uint8)
            b[0::2], b[1::2] = split[:half], split[half:]
            raw = b.tobytes()
        out[y - y0:y - y0 + rows] = np.frombuffer(raw, "<f4").reshape(rows, w)
    return out
