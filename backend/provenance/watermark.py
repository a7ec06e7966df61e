"""The invisible watermark in every rendered frame: embed (:func:`mark_frame`) and find
the payload (:func:`detect`, :func:`detect_video`).

Every frame carries two marks, added together by :func:`mark_frame`: this module's
*payload* mark (whose face, which render; needs a frame of about 192 px or more and
light compression to read) and the *presence* mark of :mod:`.presence` (one bit: "a
Facecast render", readable at 64 px, after JPEG q50, H.264 re-encodes, small rotations).
Frames under 160 px carry the *grid* mark of :mod:`.grid` (one bit on JPEG's 8 x 8
grid, informed by the frame: it survives JPEG q50 at 128 px) instead of the payload,
which is not readable there; its share of the PSNR budget goes to the presence mark.
The payload mark is the scheme frames carried before the presence mark existed; its
detector is unchanged, so older renders still verify. What follows is the payload mark.

Scheme (our own, numpy + scipy; docs/PROVENANCE.md says why not the
``invisible-watermark`` package): spread spectrum in the block DCT. The frame is cut
into 8 x 8 blocks (JPEG's and H.264's grid when the frame is not moved); in each block
seven mid-frequency DCT coefficients ((1,2) ... (3,2): above the face's smooth shading,
below what JPEG and a 50 % downscale throw away) each carry one *chip*, a pseudo-random
sign times the chip's coded bit. A tile of 8 x 8 blocks (64 px) holds 448 chips: 56 fixed
pilot chips (the same in every Facecast frame, for finding the tile) and 392 data chips
that repeat the :class:`~backend.provenance.payload.Payload`'s 124 coded bits. The tile
repeats over the frame; the pattern it makes is added to the luminance of the subject's
visible pixels only (alpha > 0: composited over a plate, the pixel carries alpha times
the mark, like the rest of the subject); chroma is untouched.

Finding it needs no original: per block, the seven coefficients are weighted by the
inverse of the block's other AC energy (flat skin speaks loudly, hair and edges barely),
summed over all tiles onto one tile's 448 chips, and each coded bit's chips are read and
decoded (soft Viterbi + the check). The tile origin is tried at (0, 0) first (a frame as
rendered, composited at its place, or rescaled as a whole), then at the strongest peaks
of an FFT correlation with the pilot (a crop, or a frame placed elsewhere in a bigger
one). Scale: the tiles are laid on a canvas whose short side is 256 px, resized to
the frame, so the mark scales with the picture and the detector resamples any frame to
its canvas first (a frame rescaled as a whole, e.g. downscaled 50 %, reads exactly);
then it tries the scalings a frame inside a bigger picture meets in practice (x1,
x1/2, x3/4, x2, x3/2, x2/3, x4, relative to 8 px blocks). Rotation, flips and other
rescales are not searched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from scipy.fft import dctn, idctn

from . import grid, presence
from .payload import CODED_BITS, Payload

BLOCK = 8
TILE_BLOCKS = 8
PERIOD = BLOCK * TILE_BLOCKS  # 64 px
# Mid-frequency DCT coefficients (vertical, horizontal) that carry chips. Without (1, 1):
# on real animated renders it lost most to H.264 (it meets the face's shading, and a
# motion-compensated block shifts it least) - the bench's H.264 CRF 23 rate went from
# 83 % to 100 % of frames at the same PSNR when it was dropped.
COEFS = ((1, 2), (2, 1), (2, 2), (1, 3), (3, 1), (2, 3), (3, 2))
N_CHIPS = TILE_BLOCKS * TILE_BLOCKS * len(COEFS)  # 448
N_PILOT = N_CHIPS // 8
AMPLITUDE = 7.0  # per coefficient, orthonormal DCT units (luminance levels 0..255)
# Before the presence mark (alone in the frame) the payload mark had this amplitude;
# ``mark_frame(..., with_presence=False)`` reproduces that scheme for benches.
OLD_AMPLITUDE = 8.5
CANVAS = 256  # the mark is laid out for a frame whose short side is this many pixels
SCALES = (1.0, 2.0, 4 / 3, 0.5, 2 / 3, 1.5, 0.25)  # other resample factors tried
MAX_VIEW_PIXELS = 2_200_000  # larger resampled views are not searched (cost)
SYNC_MIN = 4.5  # weakest pilot peak (robust z) away from the origin that is decoded
NOISE_FLOOR = 2.0  # AC energy every block is assumed to have (compression noise)
_SEED = "facecast watermark v1"


@dataclass(frozen=True)
class _Layout:
    """Which chip carries what, and its pseudo-random sign (fixed for every frame)."""

    sign: np.ndarray  # [N_CHIPS] +-1
    pilot: np.ndarray  # [N_PILOT] chip indices
    data: np.ndarray  # [N_CHIPS - N_PILOT] chip indices
    bit_of: np.ndarray  # [len(data)] coded-bit index of each data chip


@lru_cache(maxsize=1)
def _layout() -> _Layout:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(_SEED.encode()).digest()[:8],
                                               "big"))
    order = rng.permutation(N_CHIPS)
    sign = rng.choice(np.array([-1.0, 1.0]), N_CHIPS)
    data = order[N_PILOT:]
    return _Layout(sign, order[:N_PILOT], data, np.arange(len(data)) % CODED_BITS)


def _chips_to_tile(chips: np.ndarray) -> np.ndarray:
    """[N_CHIPS] chip values -> the [PERIOD, PERIOD] luminance tile they make."""
    coef = np.zeros((TILE_BLOCKS, TILE_BLOCKS, BLOCK, BLOCK))
    per_block = chips.reshape(TILE_BLOCKS, TILE_BLOCKS, len(COEFS))
    for q, (u, v) in enumerate(COEFS):
        coef[:, :, u, v] = per_block[:, :, q]
    px = idctn(coef, axes=(2, 3), norm="ortho")
    return px.transpose(0, 2, 1, 3).reshape(PERIOD, PERIOD)


@lru_cache(maxsize=16)
def _tile(payload: Payload, amplitude: float = AMPLITUDE) -> np.ndarray:
    lay = _layout()
    chips = lay.sign.copy()
    chips[lay.data] *= 2.0 * payload.coded_bits()[lay.bit_of] - 1.0
    return (_chips_to_tile(chips) * amplitude).astype(np.float32)


def canvas_size(height: int, width: int) -> tuple[int, int]:
    """The frame's size on the mark's canvas: short side ``CANVAS`` px, same aspect."""
    m = min(height, width)
    return max(1, round(height * CANVAS / m)), max(1, round(width * CANVAS / m))


@lru_cache(maxsize=8)
def _pattern(payload: Payload, height: int, width: int, with_presence: bool = True,
             previous: bool = False) -> np.ndarray:
    """The marks over a whole frame, rounded to integer levels (int16 [H, W, 1]; adding
    it to integer pixels is exactly what rounding after a float add would give, at a
    fraction of the cost): the payload's tiles laid on the frame's canvas (short side
    ``CANVAS``) and resized to the frame, so the mark scales with the picture (a 128^2
    render carries the same mark as a 256^2 one, halved), plus the presence mark
    (:mod:`.presence`) unless ``with_presence`` is false (the old scheme, for benches; and
    at the previous scheme's amplitude when ``previous``). Frames that carry the grid
    mark (under 160 px) carry no payload: it is not readable there, and its energy is
    spent on a stronger presence mark."""
    if with_presence and not previous and grid.carries(height, width):
        full = presence.pattern(height, width, presence.SMALL_AMPLITUDE, small=True)
        return np.ascontiguousarray(np.round(full[..., None]).astype(np.int16))
    hc, wc = canvas_size(height, width)
    reps = (-(-hc // PERIOD), -(-wc // PERIOD))
    full = np.tile(_tile(payload, AMPLITUDE if with_presence else OLD_AMPLITUDE),
                   reps)[:hc, :wc]
    if (hc, wc) != (height, width):
        from PIL import Image

        full = np.asarray(Image.fromarray(full, mode="F").resize(
            (width, height), Image.Resampling.BICUBIC))
    if with_presence:
        full = full + presence.pattern(height, width, None if previous else presence.AMPLITUDE)
    return np.ascontiguousarray(np.round(full[..., None]).astype(np.int16))


def mark_frame(image: np.ndarray, payload: Payload, *, with_presence: bool = True,
               with_grid: bool = True, previous: bool = False) -> np.ndarray:
    """A marked copy of a uint8 RGBA (straight alpha) or RGB frame ``[H, W, 3|4]``: the
    payload mark and the presence mark, then in small frames the grid mark, placed on
    the frame as marked so far (``with_presence=False``: the payload mark alone, the
    scheme frames carried before the presence mark, kept for benches; ``with_grid=False``:
    without the grid mark, as frames were marked before it, kept for benches;
    ``previous=True``: the presence mark at the previous scheme's amplitude, for benches).

    Only pixels with alpha > 0 change (all of an RGB frame), and only in luminance: the
    same offset is added to R, G and B.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"mark_frame needs uint8 [H, W, 3|4], got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    delta = _pattern(payload, h, w, with_presence, previous)
    visible = img[..., 3:] > 0 if img.shape[2] == 4 else None
    if visible is not None:
        delta = delta * visible
    rgb = img[..., :3].astype(np.int16)
    rgb += delta
    np.clip(rgb, 0, 255, out=rgb)
    if with_presence and with_grid and grid.carries(h, w):  # informed: on the frame as marked
        delta = grid.embed(rgb)
        rgb += delta if visible is None else delta * visible
        np.clip(rgb, 0, 255, out=rgb)
    out = img.copy()
    out[..., :3] = rgb
    return out


# --------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class Detection:
    """A watermark whose payload decoded with a valid check."""

    payload: Payload
    factor: float  # the image was resampled by this factor to read it
    offset: tuple[int, int]  # tile origin (y, x), in pixels of the resampled image
    agreement: float  # correlation of the read bits with the decoded payload's, 0..1


@dataclass(frozen=True)
class Scan:
    """What :func:`detect` saw: the decoded mark, if any, and the best pilot peak."""

    detection: Detection | None
    best_sync: float

    @property
    def found(self) -> bool:
        return self.detection is not None


_luma = presence.luma


def _resample(a: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0:
        return a
    from PIL import Image

    h, w = a.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize(
        size, Image.Resampling.BICUBIC), np.float32)


def _read_chips(y: np.ndarray, weight: np.ndarray | None, oy: int, ox: int) -> np.ndarray:
    """Weighted chip sums ``[N_CHIPS]`` with the tile origin at pixel (oy, ox)."""
    h, w = y.shape
    sy, sx = oy % BLOCK, ox % BLOCK
    nby, nbx = (h - sy) // BLOCK, (w - sx) // BLOCK
    if nby < 1 or nbx < 1:
        return np.zeros(N_CHIPS)
    crop = (slice(sy, sy + nby * BLOCK), slice(sx, sx + nbx * BLOCK))
    blocks = y[crop].reshape(nby, BLOCK, nbx, BLOCK).transpose(0, 2, 1, 3)
    c = dctn(blocks, axes=(2, 3), norm="ortho")
    noise = (c[:, :, _NOISE_MASK] ** 2).mean(-1)
    wt = 1.0 / (noise + NOISE_FLOOR)
    if weight is not None:
        wt *= weight[crop].reshape(nby, BLOCK, nbx, BLOCK).mean(axis=(1, 3))
    sel = np.stack([c[:, :, u, v] for u, v in COEFS], -1) * wt[..., None]
    by = ((sy + np.arange(nby) * BLOCK - oy) // BLOCK) % TILE_BLOCKS
    bx = ((sx + np.arange(nbx) * BLOCK - ox) // BLOCK) % TILE_BLOCKS
    acc = np.zeros((TILE_BLOCKS, TILE_BLOCKS, len(COEFS)))
    np.add.at(acc, (by[:, None], bx[None, :]), sel)
    return acc.reshape(-1)


def _noise_mask() -> np.ndarray:
    """AC coefficients that estimate a block's own texture: all but the DC, the two
    lowest (shading) and the marked ones."""
    m = np.ones((BLOCK, BLOCK), bool)
    m[0, 0] = m[0, 1] = m[1, 0] = False
    for u, v in COEFS:
        m[u, v] = False
    return m


_NOISE_MASK = _noise_mask()


def soft_bits(chips: np.ndarray) -> np.ndarray:
    lay = _layout()
    return np.bincount(lay.bit_of, weights=chips[lay.data] * lay.sign[lay.data],
                       minlength=CODED_BITS)


def _decode(chips: np.ndarray) -> tuple[Payload, float] | None:
    soft = soft_bits(chips)
    payload = Payload.from_soft(soft)
    if payload is None:
        return None
    expect = 2.0 * payload.coded_bits() - 1.0
    agree = float(soft @ expect / (np.linalg.norm(soft) * np.sqrt(len(soft)) + 1e-12))
    return payload, agree


def _whiten(y: np.ndarray, weight: np.ndarray | None) -> np.ndarray:
    """Residual at block scale, weighted by 1 / local variance (for the pilot search)."""
    r = y - ndimage.uniform_filter(y, 2 * BLOCK + 1, mode="reflect")
    energy = ndimage.uniform_filter(r * r, 2 * BLOCK + 1, mode="reflect")
    r /= np.maximum(energy, 0.0) + 16.0
    if weight is not None:
        r *= weight
    return r


def _fold(r: np.ndarray) -> np.ndarray:
    return presence.fold(r, PERIOD)


@lru_cache(maxsize=1)
def _pilot_spectrum() -> np.ndarray:
    lay = _layout()
    chips = np.zeros(N_CHIPS)
    chips[lay.pilot] = lay.sign[lay.pilot]
    return np.conj(np.fft.rfft2(_chips_to_tile(chips)))


def _pilot_peaks(y: np.ndarray, weight: np.ndarray | None, n: int
                 ) -> list[tuple[float, int, int]]:
    """The ``n`` strongest pilot correlation peaks as (robust z, dy, dx)."""
    folded = _fold(_whiten(y, weight))
    corr = np.fft.irfft2(np.fft.rfft2(folded) * _pilot_spectrum(), s=folded.shape)
    med = float(np.median(corr))
    spread = float(1.4826 * np.median(np.abs(corr - med))) + 1e-12
    out = []
    for _ in range(n):
        dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
        out.append(((float(corr[dy, dx]) - med) / spread, int(dy), int(dx)))
        ys = np.arange(dy - BLOCK // 2, dy + BLOCK // 2 + 1) % PERIOD
        xs = np.arange(dx - BLOCK // 2, dx + BLOCK // 2 + 1) % PERIOD
        corr[np.ix_(ys, xs)] = -np.inf
    return out


@dataclass
class _View:
    """One image resampled by ``factor``: what every hypothesis at that scale reads."""

    factor: float
    y: np.ndarray
    weight: np.ndarray | None

    def candidates(self, peaks: int) -> tuple[list[tuple[int, int]], float]:
        """Tile origins to try (the origin, then strong pilot peaks) and the best peak."""
        found = _pilot_peaks(self.y, self.weight, peaks)
        strong = [(dy, dx) for z, dy, dx in found if z >= SYNC_MIN and (dy, dx) != (0, 0)]
        return [(0, 0), *strong], found[0][0]


def _views(image: np.ndarray, scales: tuple[float, ...]) -> list[_View]:
    """The image resampled to its canvas first (the frame as rendered, or rescaled as a
    whole), then by the fixed ``scales`` (a frame inside a bigger picture or a crop),
    skipping those that would make it larger than ``MAX_VIEW_PIXELS``."""
    y, weight = _luma(image)
    canvas = CANVAS / min(y.shape)
    factors = [canvas, *(f for f in scales if abs(f / canvas - 1) > 0.02
                         and y.size * f * f <= MAX_VIEW_PIXELS)]
    views = []
    for factor in factors:
        ys = _resample(y, factor)
        if min(ys.shape) < PERIOD // 2:
            continue
        ws = None if weight is None else np.clip(_resample(weight, factor), 0.0, 1.0)
        views.append(_View(factor, ys, ws))
    return views


def detect(image: np.ndarray, scales: tuple[float, ...] = SCALES, peaks: int = 2) -> Scan:
    """Look for a Facecast watermark in a uint8 RGB/RGBA/grey image of any size."""
    best = 0.0
    for view in _views(image, scales):
        candidates, sync = view.candidates(peaks)
        best = max(best, sync)
        for oy, ox in candidates:
            decoded = _decode(_read_chips(view.y, view.weight, oy, ox))
            if decoded is not None:
                return Scan(Detection(decoded[0], view.factor, (oy, ox), decoded[1]), best)
    return Scan(None, best)


@dataclass(frozen=True)
class VideoScan:
    """Per-frame results of a frame sequence, and the mark read from all frames."""

    frames: list[Scan]
    combined: Detection | None  # the payload decoded from every frame's chips together
    window_found: list[bool]  # per frame: found alone or with its neighbours (window)

    @property
    def found_alone(self) -> int:
        return sum(s.found for s in self.frames)


def detect_video(frames, window: int = 25, scales: tuple[float, ...] = SCALES) -> VideoScan:
    """Detect in each frame, then accumulate: the mark is the same in every frame of a
    render, so chips read at the same tile origin add up. ``window`` frames around each
    frame (one second at 25 fps) decide the windowed verdict; all frames together the
    combined one. The origin and scale summed are those single frames were found at, or
    the canvas at (0, 0) when none was."""
    scans = [detect(f, scales) for f in frames]
    hits = [s.detection for s in scans if s.found]
    if hits:
        factor, offset = max(((d.factor, d.offset) for d in hits),
                             key=lambda k: sum((d.factor, d.offset) == k for d in hits))
    elif frames:
        factor, offset = CANVAS / min(np.asarray(frames[0]).shape[:2]), (0, 0)
    chips = []
    for f in frames:
        y, weight = _luma(f)
        ys = _resample(y, factor)
        ws = None if weight is None else np.clip(_resample(weight, factor), 0.0, 1.0)
        chips.append(_read_chips(ys, ws, *offset))
    chips_arr = np.asarray(chips)
    combined = None
    decoded = _decode(chips_arr.sum(0)) if len(chips_arr) else None
    if decoded is not None:
        combined = Detection(decoded[0], factor, offset, decoded[1])
    csum = np.concatenate([np.zeros((1, N_CHIPS)), np.cumsum(chips_arr, 0)])
    half = window // 2
    windowed = []
    for i, s in enumerate(scans):
        if s.found:
            windowed.append(True)
            continue
        lo, hi = max(0, i - half), min(len(chips_arr), i + half + 1)
        d = _decode(csum[hi] - csum[lo])
        windowed.append(d is not None and (combined is None or d[0] == combined.payload))
    return VideoScan(scans, combined, windowed)
