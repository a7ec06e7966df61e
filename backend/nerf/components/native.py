"""The CPU render kernels (``cpu_kernels.c``): built on first use, loaded with ctypes.

Why: on CPU the fused engine's frame is a few hundred tensor passes over temporaries of
[rays, steps, 3] and [planes, samples, 4]; each pass reads and writes memory, so the frame
is memory-bound. These kernels do the march, the field's lookups and the compositing in
one loop each, keeping a ray's or a sample's work in registers; the first layer's GEMM
and the MLP stay in PyTorch (oneDNN/MKL).

The library is compiled with the system C compiler (``$CC``, else ``cc``/``gcc``/``clang``;
OpenMP when the compiler has it, so the loops share PyTorch's OpenMP thread pool), once
per source, compiler and CPU, into ``$FACECAST_CACHE/kernels`` (default
``~/.cache/facecast/kernels``), written atomically so concurrent processes never load a
half-written file. With no compiler, or ``FACECAST_CPU_KERNELS=0``, ``library()`` is None
and the engine renders with its tensor code; one log line says so.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from ...cache_root import cache_root

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("cpu_kernels.c")
KERNELS_ENV = "FACECAST_CPU_KERNELS"
VERSION = 5  # ``fc_version()`` of the source this module's signatures describe
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared"]

_P = ctypes.c_void_p
_I64, _I32, _F = ctypes.c_int64, ctypes.c_int32, ctypes.c_float
_SIGNATURES = {
    "fc_version": ([], ctypes.c_int),
    "fc_march": ([_I64, _I64, _P, _P, _P, _P, _P, _P, _P, _P, _P, _I32, _I32, _P, _P, _P, _P,
                  _P, _P, _I32], _I64),
    "fc_samples": ([_I64, _P, _P, _P, _P, _P, _P, _P, _I32, _P, _I32], None),
    "fc_features": ([_I64, _P, _P, _P, _I32, _P, _P, _P, _P, _P, _P, _I32, _I32, _P, _P,
                     _I32, _P, _P, _P, _P, _P, _P, _P, _P, _I64, _P, _I32], None),
    "fc_composite": ([_I64, _P, _P, _P, _P, _P, _P, _P, _P, _I64, _F, _F, _I32, _I32, _I32, _F,
                      _P, _I32], None),
    "fc_features_backward": ([_I64, _P, _P, _P, _I32, _I64, _P, _P, _P, _P, _P, _P, _I32,
                              _I32, _P, _P, _I32, _P, _P, _P, _P, _P, _P, _P, _P, _P, _I64,
                              _P, _P, _P, _P, _P, _P, _P, _P, _I32], None),
    "fc_gather_backward": ([_I64, _I32, _I64, _I32, _P, _P, _P, _P, _P, _P, _I32], None),
}
_STATE: dict[str, object] = {}


def enabled() -> bool:
    """False when ``$FACECAST_CPU_KERNELS`` turns the kernels off (0/off/false/no)."""
    return os.environ.get(KERNELS_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def compiler() -> str | None:
    """The C compiler to build with: ``$CC``, else the first of cc, gcc, clang on PATH."""
    env = os.environ.get("CC", "").strip()
    if env:
        return shutil.which(env.split()[0]) and env
    return next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)


def cache_dir() -> Path:
    return cache_root() / "kernels"


def _cpu_id() -> str:
    """What ``-march=native`` depends on: the machine and its CPU's feature flags."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def _build(cc: str) -> Path:
    """The compiled library's path (built now unless the cache has it)."""
    src = SOURCE.read_bytes()
    version = subprocess.run([*cc.split(), "--version"], capture_output=True, text=True,
                             timeout=60).stdout.splitlines()[:1]
    key = hashlib.sha256(src + repr((cc, version, FLAGS, _cpu_id())).encode()).hexdigest()
    out = cache_dir() / f"cpu_kernels-{key[:20]}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for extra in (["-fopenmp"], []):  # without OpenMP (e.g. Apple clang): one thread
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        try:
            res = subprocess.run([*cc.split(), *FLAGS, *extra, str(SOURCE), "-o", tmp, "-lm"],
                                 capture_output=True, text=True, timeout=300)
            if res.returncode == 0:
                os.replace(tmp, out)
                return out
            errors.append((res.stderr or res.stdout).strip().splitlines()[-1:])
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise RuntimeError(f"{cc} could not build {SOURCE.name}: {errors[-1]}")


def library() -> ctypes.CDLL | None:
    """The loaded kernels, or None (kernels off, no compiler, build or load failed: logged
    once, and the engine uses its tensor code)."""
    if not enabled():
        return None
    if "lib" in _STATE:
        return _STATE["lib"]  # type: ignore[return-value]
    lib = None
    cc = compiler()
    try:
        if cc is None:
            raise RuntimeError("no C compiler found (set $CC, or install gcc)")
        lib = ctypes.CDLL(str(_build(cc)))
        for name, (args, res) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
        if lib.fc_version() != VERSION:
            raise RuntimeError(f"kernel version {lib.fc_version()} != {VERSION}")
    except Exception as exc:  # any failure means: render without them
        log.warning("CPU render kernels unavailable (%s); rendering with the fused tensor "
                    "engine", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        lib = None
    _STATE["lib"] = lib
    return lib


def ptr(t: torch.Tensor | None) -> int | None:
    """The data pointer of a contiguous CPU tensor (None passes NULL)."""
    if t is None:
        return None
    assert t.is_contiguous() and t.device.type == "cpu", "kernels take contiguous CPU tensors"
    return t.data_ptr()
