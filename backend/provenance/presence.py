"""The presence mark: one fixed low-frequency pattern in every Facecast frame that says
"a Facecast render" and survives what small frames and re-encoded videos go through.

Why a second layer beside the payload mark (:mod:`.watermark`): the payload's 124 coded
bits need many mid-frequency chips, which a 96 px render, JPEG q50 at 128 px or an H.264
re-encode at CRF 28 do not leave readable. Answering "is this synthetic?" needs one
bit, not 124: a zero-bit mark (correlate with a known pattern, compare with the
correlation at every other shift) reads at a far lower signal-to-noise ratio, so it can
live where compression keeps things - low spatial frequencies - at an energy the
picture can afford.

Scheme: a pseudo-random tile of ``TILE`` x ``TILE`` cells (zero-mean, unit variance,
fixed for every frame) repeats over a *canvas* whose short side is ``CANVAS`` cells; the
canvas is resized (bicubic) to the frame, so one cell is ``short side / CANVAS`` pixels
(1.5 px at 96^2, 8 px at 512^2) and the mark scales with the picture: a frame resized as
a whole reads exactly. It is added to luminance (the same offset on R, G and B) of the
subject's visible pixels only, ``AMPLITUDE`` levels RMS on the frame whatever its size
(the render's PSNR cost is set by that energy), ``SMALL_AMPLITUDE`` in frames under
160 px, which carry no payload mark, with the band that survives H.264 there emphasised
(``SMALL_BAND``).

Finding it: the frame's luminance is resampled to its canvas (area average), whitened
(minus a local mean, divided by the local energy, times alpha when there is one), the
tiles are summed onto one, and one FFT correlates that with the tile at every cyclic
shift. The upright picture, and a picture shrunk below its canvas (a 256^2 frame
resized to 64^2 keeps a quarter of the tile's band), are also read with a generalised
matched filter: each frequency weighted by the inverse of the picture's own power there,
measured over its tiles, so the frequencies a resampler or codec left count by how
clean they are. The
score is the correlation at a shift in robust standard deviations of the correlations
at all the other shifts (an empirical null from the image itself). The
frame as rendered is read at shift (0, 0); a crop or a frame placed in a bigger one at
the best shift (stricter threshold, it was searched); small rotations (up to
``MAX_ANGLE`` degrees) and rescales of a crop by trying a few angles and scales on the
canvas, which costs little because the canvas is small (64 x 64 for a square frame).
Videos sum the whitened canvases of neighbouring frames: the pattern is the same in
every frame and fixed to the frame, so it adds up while the picture does not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

CANVAS = 128  # cells on the frame's short side (fewer in frames smaller than this)
TILE = 32  # the pattern repeats every TILE cells
AMPLITUDE = 2.84  # luminance levels, the mark's RMS on a frame that carries the payload too
# ... and on a frame under 160 px, which carries the grid mark instead of the payload
# (unreadable there): the payload's share of the 0.1 dB budget goes to this mark.
SMALL_AMPLITUDE = 3.1
# In those small frames a cell is a pixel, and H.264 drops most of the finest detail and
# JPEG's quantisation the smoothest: the mark's energy at frequencies between these
# (cycles per pixel, the larger of the two axes) is weighted ``SMALL_GAIN`` times before
# the mark is brought back to ``SMALL_AMPLITUDE``.
SMALL_BAND = (0.25, 0.45)
SMALL_GAIN = 3.0
# The previous scheme's amplitude: the tile's RMS before resizing to the frame (a 128 px
# frame carried 3.5 levels, a 256 px one 2.84 after bicubic upsampling smoothed it);
# ``pattern(..., previous=True)`` reproduces it for benches.
PREVIOUS_AMPLITUDE = 3.5
# The matched reading: every frequency's own power plus this share of the mean power
# weighs it. In a picture shrunk below its canvas its aligned score spreads 1.22 times
# wider over real pictures than the plain reading's (1.96 against 1.61 over 178 frames
# shrunk to 64 px), so its threshold there is ``ALIGNED_Z`` times that: the same
# false-positive tail. At a picture's own size it spreads no wider (1.14 against 1.21
# over 178 frames at 128 px and 512 px): ``ALIGNED_Z``.
NOISE_FLOOR = 1.0
MATCHED_Z = 6.7
MIN_SIDE = 64  # smallest short side that carries a readable mark
ALIGNED_Z = 5.5  # score needed at shift (0, 0): the frame as rendered, or resized
SEARCHED_Z = 7.0  # score needed at a searched shift (crops, a frame inside another)
ANGLES = (0.0, -0.5, 0.5, -1.0, 1.0, -1.5, 1.5, -2.0, 2.0, -2.5, 2.5, -3.0, 3.0)
MAX_ANGLE = max(ANGLES)
CROP_SCALES = (1.0, 0.9, 0.8, 0.75, 0.5)  # share of the short side a crop kept
_SEED = "facecast presence v2"
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_WHITEN = 3  # local-mean window in cells


@lru_cache(maxsize=1)
def tile() -> np.ndarray:
    """The fixed pattern: ``[TILE, TILE]`` float32, zero mean, unit variance."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(_SEED.encode()).digest()[:8],
                                               "big"))
    t = rng.standard_normal((TILE, TILE))
    t -= t.mean()
    return (t / t.std()).astype(np.float32)


def canvas_size(height: int, width: int, cells: int | None = None) -> tuple[int, int]:
    """The frame's canvas: ``cells`` (default: ``CANVAS``, or the short side of a smaller
    frame: a cell is never smaller than a pixel) on the short side, same aspect."""
    m = min(height, width)
    cells = min(CANVAS, m) if cells is None else cells
    return max(1, round(height * cells / m)), max(1, round(width * cells / m))


@lru_cache(maxsize=8)
def pattern(height: int, width: int, rms: float | None = AMPLITUDE, small: bool = False
            ) -> np.ndarray:
    """The mark over a whole ``height`` x ``width`` frame, in luminance levels (float32),
    ``rms`` levels RMS (None: the previous scheme's amplitude, for benches); ``small``:
    its ``SMALL_BAND`` emphasised (frames under 160 px)."""
    from PIL import Image

    hc, wc = canvas_size(height, width)
    reps = (-(-hc // TILE), -(-wc // TILE))
    canvas = np.tile(tile(), reps)[:hc, :wc] * PREVIOUS_AMPLITUDE
    out = np.asarray(Image.fromarray(np.ascontiguousarray(canvas), mode="F").resize(
        (width, height), Image.Resampling.BICUBIC), np.float32)
    if rms is None:
        return out
    if small:
        fy = np.abs(np.fft.fftfreq(height))[:, None]
        fx = np.abs(np.fft.fftfreq(width))[None, :]
        f = np.maximum(fy, fx)
        gain = np.where((f >= SMALL_BAND[0]) & (f <= SMALL_BAND[1]), SMALL_GAIN, 1.0)
        out = np.real(np.fft.ifft2(np.fft.fft2(out) * gain))
    return (out * (rms / max(float(out.std()), 1e-6))).astype(np.float32)


# --------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class Presence:
    """The best reading of one picture (or a window of frames)."""

    score: float  # robust z of the correlation at the chosen shift
    found: bool
    angle: float = 0.0
    scale: float = 1.0
    shift: tuple[int, int] = (0, 0)


def luma(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    img = np.asarray(image)
    if img.ndim == 2:
        return img.astype(np.float32), None
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected an image [H, W], [H, W, 3] or [H, W, 4], got {img.shape}")
    y = img[..., :3].astype(np.float32) @ _LUMA
    weight = img[..., 3].astype(np.float32) / 255.0 if img.shape[2] == 4 else None
    return y, weight


def _to_canvas(a: np.ndarray, scale: float, cells: int) -> np.ndarray:
    """Resample a full-frame array onto a canvas of ``cells`` on the short side, times
    ``scale`` (area average down)."""
    from PIL import Image

    hc, wc = canvas_size(*a.shape, cells)
    size = (max(1, round(wc * scale)), max(1, round(hc * scale)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(a, np.float32), mode="F").resize(
        size, Image.Resampling.BICUBIC, reducing_gap=None if size[0] >= a.shape[1] else 2.0),
        np.float32)


def _whiten(y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    r = y - ndimage.uniform_filter(y, _WHITEN, mode="reflect")
    energy = ndimage.uniform_filter(r * r, 2 * _WHITEN + 1, mode="reflect")
    r = r / (energy + 1.0)
    if w is not None:
        r = r * w
    return r.astype(np.float32)


def _rotate(a: np.ndarray, angle: float) -> np.ndarray:
    """Undo a rotation of ``angle`` degrees about the centre (PIL's sense)."""
    if angle == 0.0:
        return a
    return ndimage.rotate(a, -angle, reshape=False, order=3, mode="constant")


def fold(r: np.ndarray, period: int = TILE) -> np.ndarray:
    """Sum the ``period``-periodic cells of a whitened picture onto one period."""
    h, w = r.shape
    ph, pw = -(-h // period) * period, -(-w // period) * period
    padded = np.zeros((ph, pw), np.float32)
    padded[:h, :w] = r
    return padded.reshape(ph // period, period, pw // period, period).sum(axis=(0, 2))


def matched_fold(r: np.ndarray) -> np.ndarray:
    """:func:`fold`, each frequency divided by the picture's own power there: the power of
    every ``TILE`` x ``TILE`` tile's spectrum, averaged over tiles, smoothed over
    neighbouring frequencies, plus ``NOISE_FLOOR`` of its mean. Correlating this with the
    tile is the generalised matched filter for a picture whose noise (its own content)
    has that spectrum; it is linear, so frames' folds still add up in a video."""
    h, w = r.shape
    ph, pw = -(-h // TILE) * TILE, -(-w // TILE) * TILE
    padded = np.zeros((ph, pw), np.float32)
    padded[:h, :w] = r
    tiles = padded.reshape(ph // TILE, TILE, pw // TILE, TILE).transpose(0, 2, 1, 3)
    spectra = np.fft.fft2(tiles.reshape(-1, TILE, TILE))
    power = ndimage.uniform_filter((np.abs(spectra) ** 2).mean(0), 3, mode="wrap")
    power += NOISE_FLOOR * float(power.mean()) + 1e-12
    return np.real(np.fft.ifft2(spectra.sum(0) / power)).astype(np.float32)


def _band_limited(band: float) -> np.ndarray:
    """The tile as it survives in a picture shrunk ``band`` times below its canvas and
    read back on that canvas (resized down, then up, bicubic, as :func:`_to_canvas`)."""
    from PIL import Image

    big = np.ascontiguousarray(np.tile(tile(), (3, 3)))
    n = big.shape[0]
    small = Image.fromarray(big, mode="F").resize((round(n / band),) * 2,
                                                  Image.Resampling.BICUBIC)
    back = np.asarray(small.resize((n, n), Image.Resampling.BICUBIC), np.float32)
    return back[TILE:2 * TILE, TILE:2 * TILE]


@lru_cache(maxsize=8)
def _tile_spectrum(band: float = 1.0) -> np.ndarray:
    t = tile() if band <= 1.0 else _band_limited(band)
    t = t - ndimage.uniform_filter(t, _WHITEN, mode="wrap")
    return np.conj(np.fft.rfft2(t))


def scores(folded: np.ndarray, band: float = 1.0) -> np.ndarray:
    """Robust z of the correlation with the tile at every cyclic shift ``[TILE, TILE]``
    (``band`` > 1: the tile band-limited as a picture that many times smaller than its
    canvas keeps it: the matched filter for a shrunk frame)."""
    corr = np.fft.irfft2(np.fft.rfft2(folded) * _tile_spectrum(band), s=folded.shape)
    med = float(np.median(corr))
    spread = float(1.4826 * np.median(np.abs(corr - med))) + 1e-12
    return (corr - med) / spread


# (angle in degrees, crop scale, canvas cells, band: how many times the picture is
# smaller than that canvas, 1 when it is not)
View = tuple[float, float, int, float]


def folded_views(image: np.ndarray, angles: tuple[float, ...] = ANGLES,
                 scales: tuple[float, ...] = CROP_SCALES, matched: bool = True
                 ) -> dict[View, np.ndarray]:
    """Each hypothesis -> the picture's whitened, folded canvas under it ``[TILE, TILE]``;
    the upright, uncropped view and every view of a picture shrunk below its canvas get
    its :func:`matched_fold` too (``[2, TILE, TILE]``: plain, matched) unless ``matched``
    is false (the previous
    scheme's reading, for benches). A frame smaller than ``CANVAS`` was rendered at its
    size (canvas = its short side) or shrunk from a bigger render (canvas = ``CANVAS``):
    both are read."""
    y, w = luma(image)
    m = min(y.shape)
    out = {}
    for cells in sorted({min(CANVAS, m), CANVAS}):
        for scale in scales if cells <= m else (1.0,):
            yc = _to_canvas(y, scale, cells)
            if min(yc.shape) < TILE:
                continue
            wc = np.ones_like(yc) if w is None else np.clip(_to_canvas(w, scale, cells),
                                                              0.0, 1.0)
            for angle in angles if scale == 1.0 else (0.0,):  # crops: upright
                band = round(cells / m, 2) if cells > m else 1.0
                r = _whiten(_rotate(yc, angle), _rotate(wc, angle))
                both = matched and (band > 1.0 or (angle, scale) == (0.0, 1.0))
                out[(angle, scale, cells, band)] = (np.stack([fold(r), matched_fold(r)])
                                                    if both else fold(r))
    return out


def judge(views: dict[View, np.ndarray]) -> Presence:
    """The verdict over hypotheses: found when the aligned shift of any view reaches
    ``ALIGNED_Z`` (also read with the matched filter; ``MATCHED_Z`` so read in a shrunk
    picture) or any shift reaches ``SEARCHED_Z``; else the best aligned score."""
    best = Presence(-np.inf, False)
    for (angle, scale, _, band), folded in views.items():
        z = scores(folded[0] if folded.ndim == 3 else folded, band)
        aligned = float(z[0, 0])
        if aligned >= ALIGNED_Z:
            return Presence(aligned, True, angle, scale)
        if folded.ndim == 3:
            matched = float(scores(folded[1], band)[0, 0])
            if matched >= (MATCHED_Z if band > 1.0 else ALIGNED_Z):
                return Presence(matched, True, angle, scale)
        dy, dx = np.unravel_index(int(np.argmax(z)), z.shape)
        if float(z[dy, dx]) >= SEARCHED_Z:
            return Presence(float(z[dy, dx]), True, angle, scale, (int(dy), int(dx)))
        if aligned > best.score:
            best = Presence(aligned, False, angle, scale)
    return best


def detect(image: np.ndarray) -> Presence:
    """Is the Facecast presence mark in this picture (uint8 RGB/RGBA/grey, any size)?"""
    return judge(folded_views(image))


def detect_frames(frames, window: int = 25, matched: bool = True
                  ) -> tuple[list[Presence], list[Presence]]:
    """Per frame: the frame alone, and the frame summed with its ``window`` neighbours
    (upright, at the frame's own scale: a video is re-encoded, not rotated;
    ``matched=False``: the previous scheme's reading, for benches)."""
    alone, folded = [], []
    for f in frames:
        views = folded_views(f, angles=(0.0,), scales=(1.0,), matched=matched)
        alone.append(judge(views))
        folded.append(views)
    windowed = []
    if not folded:
        return alone, windowed
    keys = [k for k in folded[0] if all(k in v for v in folded)]
    csum = {k: np.concatenate([np.zeros((1, *folded[0][k].shape)),
                               np.cumsum([v[k] for v in folded], 0)]) for k in keys}
    half = window // 2
    for i in range(len(folded)):
        lo, hi = max(0, i - half), min(len(folded), i + half + 1)
        windowed.append(judge({k: c[hi] - c[lo] for k, c in csum.items()}))
    return alone, windowed
