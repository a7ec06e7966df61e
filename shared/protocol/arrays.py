"""Arrays as raw frames: dtype allow-list, descriptors and zero-copy decoding.

An array travels as one frame of C-contiguous little-endian bytes. The signed header
describes it as ``[dtype, shape, nbytes]``; the receiver checks the descriptor against
the allow-list and the frame length before viewing the bytes as an array. No pickle.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ProtocolError
from .constants import MAX_NDIM

#: dtype strings allowed on the wire (numpy ``dtype.str``, little-endian or byte-free).
ALLOWED_DTYPES: frozenset[str] = frozenset({
    "|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8",
})


def to_wire(array: Any) -> tuple[list, memoryview]:
    """Return ``(descriptor, buffer)`` for an array, converting only when it must."""
    arr = np.asarray(array)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not _native_little()):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if arr.dtype.str not in ALLOWED_DTYPES:
        raise ProtocolError(f"dtype {arr.dtype} cannot be sent",
                            f"convert to one of {sorted(ALLOWED_DTYPES)}", code="bad_dtype")
    if arr.ndim > MAX_NDIM:
        raise ProtocolError(f"array has {arr.ndim} dimensions (max {MAX_NDIM})",
                            "reshape it before sending", code="bad_shape")
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")  # not np.ascontiguousarray: it turns 0-d into 1-d
    desc = [arr.dtype.str, list(arr.shape), arr.nbytes]
    if arr.nbytes == 0:  # memoryview cannot cast a view with a zero in its shape
        return desc, memoryview(b"")
    return desc, memoryview(arr.reshape(-1).view(np.uint8))


def check_descriptor(desc: Any) -> tuple[np.dtype, tuple[int, ...], int]:
    """Validate an untrusted ``[dtype, shape, nbytes]`` descriptor."""
    if not (isinstance(desc, list | tuple) and len(desc) == 3):
        raise ProtocolError("array descriptor is not [dtype, shape, nbytes]",
                            "send arrays with the Facecast client", code="malformed")
    dtype_str, shape, nbytes = desc
    if not isinstance(dtype_str, str) or dtype_str not in ALLOWED_DTYPES:
        raise ProtocolError(f"dtype {dtype_str!r} is not allowed",
                            f"use one of {sorted(ALLOWED_DTYPES)}", code="bad_dtype")
    if (not isinstance(shape, list | tuple) or len(shape) > MAX_NDIM
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                       for s in shape)):
        raise ProtocolError(f"array shape {shape!r} is invalid",
                            f"use up to {MAX_NDIM} non-negative integer dimensions",
                            code="bad_shape")
    dtype = np.dtype(dtype_str)
    # Exact integer maths: numpy's int64 product wraps, and a wrapped 0 once matched an
    # empty frame for a shape like [2**40, 2**40, 2**40].
    expected = math.prod(shape) * dtype.itemsize
    if not isinstance(nbytes, int) or nbytes != expected:
        raise ProtocolError(f"array byte count {nbytes!r} does not match shape {shape} of "
                            f"{dtype_str} ({expected} bytes)", "send consistent descriptors",
                            code="bad_shape")
    return dtype, tuple(shape), expected


def from_wire(desc: Any, buffer: Any) -> np.ndarray:
    """View a received frame as an array without copying; the result is read-only."""
    dtype, shape, nbytes = check_descriptor(desc)
    view = memoryview(buffer)
    if view.nbytes != nbytes:
        raise ProtocolError(f"array frame has {view.nbytes} bytes, descriptor says {nbytes}",
                            "the message was truncated or forged", code="bad_shape")
    arr = np.frombuffer(view, dtype=dtype).reshape(shape)
    arr.flags.writeable = False
    return arr


def _native_little() -> bool:
    return np.little_endian
