"""The grid mark: a one-bit "a Facecast render" mark for small frames that survives JPEG.

Why a third layer: at 96-128 px the presence mark (:mod:`.presence`) lives in cells of a
pixel or two, and JPEG at quality 50 quantises them away; the payload mark
(:mod:`.watermark`) is not readable there at all. JPEG (and an unmoved frame's own
pixel grid) cuts the picture into 8 x 8 blocks and keeps their lowest DCT coefficients
best, so this mark lives exactly there: frames whose short side is below
``MAX_SIDE`` carry it beside the other two (the payload mark still reads in a 128 px
frame that the face fills).

Scheme: quantisation index modulation (informed embedding, so the face's own content
does not drown it). Every 8 x 8 block of the frame (JPEG's grid: from the top-left
pixel) has ``len(COEFS)`` low AC coefficients of its luminance; each is moved
``STRENGTH`` of the way to the nearest point of a lattice ``STEP`` apart, offset by a
fixed pseudo-random dither per block and coefficient. The same offset is added to R, G
and B of the subject's visible pixels (alpha > 0), like the other marks.

Finding it: each chip's residual against its lattice, ``e`` in [-1/2, 1/2) steps, is
read; under the mark it sits near 0, in any picture that does not carry it it is
uniform (the dither is independent of the picture). The score is the log likelihood
ratio of "a share ``SHARE`` of the blocks are marked, each chip's residual wrapped-normal
with spread ``SIGMA``" against "uniform". Its likelihood ratio has mean exactly 1 in
any unmarked picture, so by Markov's inequality a score of ``FOUND_LLR`` has a false
positive probability of at most ``exp(-FOUND_LLR)`` per reading, whatever the picture.
Video: each chip's ratio is averaged over the frames of a window (mean 1 still), so
frames add up.

It reads only at the frame's own size and grid (a frame as rendered, JPEG'd, or
re-encoded as a whole); resizes, crops and rotations are the presence mark's job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.fft import dctn, idctn

MAX_SIDE = 160  # frames whose short side is below this carry the grid mark
BLOCK = 8
COEFS = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1))
STEP = 28.0  # lattice spacing, orthonormal DCT units of luminance (0..255)
STRENGTH = 0.7  # share of the way to the lattice point each coefficient is moved
SIGMA = 0.2  # detector's model: spread of a marked chip's residual, in steps
SHARE = 0.1  # detector's model: share of the picture's blocks that carry the mark
FOUND_LLR = 16.0  # false positive probability <= exp(-16) = 1.1e-7 per reading
_MAX_BLOCKS = 256  # dither table side (frames up to 2048 px)
_SEED = "facecast grid v1"
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def carries(height: int, width: int) -> bool:
    """Does a frame of this size carry the grid mark?"""
    return BLOCK <= min(height, width) < MAX_SIDE


@lru_cache(maxsize=1)
def _dither_table() -> np.ndarray:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(_SEED.encode()).digest()[:8],
                                               "big"))
    return rng.random((_MAX_BLOCKS, _MAX_BLOCKS, len(COEFS)))


def _dither(nby: int, nbx: int) -> np.ndarray:
    """The lattice offsets of an ``nby`` x ``nbx``-block frame, in steps ``[nby, nbx, K]``."""
    table = _dither_table()
    return np.tile(table, (-(-nby // _MAX_BLOCKS), -(-nbx // _MAX_BLOCKS), 1))[:nby, :nbx]


def _coefficients(y: np.ndarray) -> np.ndarray:
    """The marked DCT coefficients of each whole 8 x 8 block of luminance ``[nby, nbx, K]``."""
    nby, nbx = y.shape[0] // BLOCK, y.shape[1] // BLOCK
    blocks = y[:nby * BLOCK, :nbx * BLOCK].reshape(nby, BLOCK, nbx, BLOCK).transpose(0, 2, 1, 3)
    c = dctn(blocks, axes=(2, 3), norm="ortho")
    return np.stack([c[:, :, u, v] for u, v in COEFS], -1)


def _luma(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        return img.astype(np.float32)
    return img[..., :3].astype(np.float32) @ _LUMA


def embed(image: np.ndarray) -> np.ndarray:
    """The grid mark's luminance offsets for this uint8 RGB/RGBA frame, int16 ``[H, W, 1]``
    (zero where it carries none: frames of ``MAX_SIDE`` and up, partial blocks)."""
    h, w = image.shape[:2]
    out = np.zeros((h, w, 1), np.int16)
    if not carries(h, w):
        return out
    chips = _coefficients(_luma(image))
    nby, nbx = chips.shape[:2]
    d = _dither(nby, nbx)
    target = (np.round(chips / STEP - d) + d) * STEP
    moved = np.zeros((nby, nbx, BLOCK, BLOCK))
    for q, (u, v) in enumerate(COEFS):
        moved[:, :, u, v] = STRENGTH * (target[..., q] - chips[..., q])
    px = idctn(moved, axes=(2, 3), norm="ortho").transpose(0, 2, 1, 3)
    out[:nby * BLOCK, :nbx * BLOCK, 0] = np.round(px.reshape(nby * BLOCK, nbx * BLOCK))
    return out


# --------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class GridReading:
    llr: float  # log likelihood ratio, marked vs not (natural log)
    found: bool


def _wrapped_ratio(e: np.ndarray) -> np.ndarray:
    """Density of a wrapped normal (spread ``SIGMA``, period 1) over the uniform one."""
    k = np.arange(-2, 3)
    g = np.exp(-((e[..., None] + k) ** 2) / (2 * SIGMA ** 2)).sum(-1)
    return g / (np.sqrt(2 * np.pi) * SIGMA)


def chip_ratios(image: np.ndarray) -> np.ndarray:
    """Per block and chip, the likelihood ratio of its residual ``[nby, nbx, K]``; blocks
    a frame's alpha leaves mostly transparent are set to 1 (no evidence either way)."""
    img = np.asarray(image)
    chips = _coefficients(_luma(img))
    nby, nbx = chips.shape[:2]
    e = chips / STEP - _dither(nby, nbx)
    ratios = _wrapped_ratio(e - np.round(e))
    if img.ndim == 3 and img.shape[2] == 4:
        a = img[:nby * BLOCK, :nbx * BLOCK, 3].reshape(nby, BLOCK, nbx, BLOCK).mean(axis=(1, 3))
        ratios[a < 127.5] = 1.0
    return ratios


def judge(ratios: np.ndarray) -> GridReading:
    """The verdict from chip ratios (one frame's, or a window's mean)."""
    llr = float(np.log1p(SHARE * (np.prod(ratios, -1) - 1.0)).sum()) if ratios.size else 0.0
    return GridReading(llr, llr >= FOUND_LLR)


def detect(image: np.ndarray) -> GridReading:
    """Is the grid mark in this picture (uint8 RGB/RGBA/grey) at its own size and grid?"""
    img = np.asarray(image)
    if not carries(*img.shape[:2]):
        return GridReading(0.0, False)
    return judge(chip_ratios(img))


def detect_frames(frames, window: int = 25) -> tuple[list[GridReading], list[GridReading]]:
    """Per frame: alone, and with its ``window`` neighbours (chip ratios averaged)."""
    frames = list(frames)
    if not frames or not carries(*np.asarray(frames[0]).shape[:2]):
        none = [GridReading(0.0, False)] * len(frames)
        return none, list(none)
    ratios = np.stack([chip_ratios(f) for f in frames])
    alone = [judge(r) for r in ratios]
    csum = np.concatenate([np.zeros((1, *ratios.shape[1:])), np.cumsum(ratios, 0)])
    half = window // 2
    windowed = []
    for i in range(len(frames)):
        lo, hi = max(0, i - half), min(len(frames), i + half + 1)
        windowed.append(judge((csum[hi] - csum[lo]) / (hi - lo)))
    return alone, windowed
