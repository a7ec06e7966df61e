"""Per-frame phone evidence from pocketsphinx's English acoustic model, scored our own way.

Why: the mouth needs to know which phone sounds when. pocketsphinx's wheel carries an
English acoustic model trained on far more speech than we have (a phonetically tied
mixture model: one codebook of 128 diagonal Gaussians per phone and feature stream, and
mixture weights for every HMM state). pocketsphinx's own phone-loop decoder scores it one
frame at a time in C with a search on top, about 3 s per minute of speech: twenty times
our whole budget. Every frame's scores are independent of the search, so here they are
computed for the whole recording at once as matrix products (``torch``, bounded blocks):
about 0.1 s per minute, and the result is what a mouth model wants anyway: per-frame
evidence for every phone, not a 1-best guess (the phone loop heard about a third of the
bilabials in espeak voices; the per-frame scores separate bilabial frames from the rest
with an AUC near 0.86 before any learning).

What is scored: the 42 context-independent phones (39 English phones, silence and two
noise fillers), each an HMM of three states. A state's score is the log-likelihood of the
frame's three feature streams (``backend.speech.mfcc``) under its mixture; a phone's score
is the best of its states. ``PhoneScores.posteriors`` turns them into a distribution over
phones per frame with an acoustic scale (``ACOUSTIC_SCALE``): GMM log-likelihoods of 39
dimensions are far too confident to use as probabilities directly.

Frames are scored every ``STRIDE`` hops (33 Hz), then linearly interpolated back to the
100 Hz hop grid: lips do not move faster, and it cuts the cost to a third.

The files are read from the installed pocketsphinx wheel (``en-us/en-us``: ``mdef``,
``means``, ``variances``, ``sendump``), nothing is downloaded; the wheel is the data
engine's extra, so its absence is a clear error, not a crash.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.errors import FacecastError

from .mfcc import features

N_STATES = 3
N_GAUSS = 128
N_STREAMS = 3
STRIDE = 3  # score every 3rd hop (33 Hz; 2 and 4 separated phones as well on espeak)
BLOCK = 128  # frames per scoring block: the [block, phones x Gaussians] scores stay in cache
VAR_FLOOR = 1e-4  # pocketsphinx's -varfloor
# Mixture weights in ``sendump`` are -log(w) in units of log(1.0001) << 10 (8-bit).
MIXW_UNIT = 1024.0 * np.log(1.0001)
ACOUSTIC_SCALE = 0.12  # log-likelihood -> log-posterior scale (see PhoneScores.posteriors)
SILENCES = ("SIL", "+NSN+", "+SPN+")

_lock = threading.Lock()
_model: AcousticModel | None = None


def model_dir() -> Path:
    """The en-us acoustic model folder inside the installed pocketsphinx wheel."""
    try:
        from pocketsphinx import get_model_path
    except ImportError as exc:  # pragma: no cover - a dependency of the data engine
        raise FacecastError("pocketsphinx is not installed (its wheel carries the English "
                            "acoustic model lip sync reads)",
                            "install the data-engine extra: pip install -e '.[tracking]'",
                            code="missing_dependency") from exc
    return Path(get_model_path("en-us/en-us"))


def _s3_payload(path: Path) -> tuple[bytes, int]:
    """Sphinx s3 binary file: text header up to 'endhdr', then a byte-order word."""
    raw = path.read_bytes()
    at = raw.index(b"endhdr\n") + 7
    if struct.unpack_from("<I", raw, at)[0] != 0x11223344:
        raise FacecastError(f"{path} is not a little-endian Sphinx model file",
                            "reinstall pocketsphinx==5.1.1")
    return raw, at + 4


def _read_gaussians(path: Path) -> np.ndarray:
    """means/variances: float32[codebooks, streams, Gaussians, dims]."""
    raw, at = _s3_payload(path)
    n_cb, n_feat, n_gauss = struct.unpack_from("<3i", raw, at)
    dims = struct.unpack_from(f"<{n_feat}i", raw, at + 12)
    count = struct.unpack_from("<i", raw, at + 12 + 4 * n_feat)[0]
    data = np.frombuffer(raw, "<f4", count, at + 16 + 4 * n_feat)
    return data.reshape(n_cb, n_feat, n_gauss, dims[0])


def _read_mixture_weights(path: Path) -> np.ndarray:
    """sendump: uint8[streams, Gaussians, senones] of quantised -log weights."""
    raw, at = path.read_bytes(), 0
    while True:  # length-prefixed header strings, ended by a zero length
        n = struct.unpack_from("<i", raw, at)[0]
        at += 4
        if n == 0:
            break
        at += n
    rows, cols = struct.unpack_from("<2i", raw, at)
    return np.frombuffer(raw, np.uint8, N_STREAMS * rows * cols, at + 8).reshape(
        N_STREAMS, rows, cols)


def _read_phones(path: Path) -> tuple[list[str], np.ndarray]:
    """Binary model definition: (CI phone names, senone ids int[phones, states])."""
    raw = path.read_bytes()
    if raw[:4] != b"BMDF":
        raise FacecastError(f"{path} is not a binary model definition",
                            "reinstall pocketsphinx==5.1.1")
    at = 12 + struct.unpack_from("<i", raw, 8)[0]
    n_ci, n_phone, n_emit, _, _, _, _, _, n_tree, _ = struct.unpack_from("<10i", raw, at)
    at += 40
    start, names = at, []
    for _ in range(n_ci):
        end = raw.index(b"\0", at)
        names.append(raw[at:end].decode("ascii"))
        at = end + 1
    at = start + (at - start + 3) // 4 * 4 + 8 * n_tree  # padding, then the CD tree
    phones = np.frombuffer(raw, np.int32, 3 * n_phone, at).reshape(n_phone, 3)
    at += 12 * n_phone
    size = struct.unpack_from("<i", raw, at)[0]
    sseq = np.frombuffer(raw, np.uint16, size, at + 4).reshape(-1, n_emit)
    return names, sseq[phones[:n_ci, 0]].astype(np.int64)


@dataclass(frozen=True)
class PhoneScores:
    """Per-hop log-likelihood of every context-independent phone."""

    names: tuple[str, ...]  # ARPAbet CI phones (+ SIL and noise fillers)
    loglik: np.ndarray  # float32[H, P] best-state log-likelihood, 100 Hz hop grid

    def posteriors(self, scale: float = ACOUSTIC_SCALE) -> np.ndarray:
        """float32[H, P] per-frame phone posteriors (uniform prior, acoustic ``scale``)."""
        z = self.loglik * np.float32(scale)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


class AcousticModel:
    """pocketsphinx's en-us PTM model, scoring the context-independent phone states."""

    def __init__(self, folder: str | Path | None = None) -> None:
        import torch

        folder = Path(folder) if folder is not None else model_dir()
        names, senones = _read_phones(folder / "mdef")
        means = _read_gaussians(folder / "means").astype(np.float64)
        var = np.maximum(_read_gaussians(folder / "variances").astype(np.float64), VAR_FLOOR)
        weights = _read_mixture_weights(folder / "sendump")
        n_ph = len(names)
        if means.shape[:3] != (n_ph, N_STREAMS, N_GAUSS):
            raise FacecastError(f"unexpected acoustic model layout {means.shape}",
                                "reinstall pocketsphinx==5.1.1")
        self.names = tuple(names)
        # log N(x; mu, v) = [x^2, x] @ [-1/2v; mu/v] + const: one matrix product per stream
        self.proj, self.bias, self.mix = [], [], []
        for f in range(N_STREAMS):
            mu, v = means[:, f], var[:, f]
            proj = np.concatenate([-0.5 / v, mu / v], axis=-1).reshape(n_ph * N_GAUSS, -1).T
            bias = (-0.5 * np.log(2 * np.pi * v).sum(-1) - 0.5 * (mu * mu / v).sum(-1))
            mix = np.exp(-weights[f][:, senones].astype(np.float64) * MIXW_UNIT)  # [G, P, S]
            self.proj.append(torch.from_numpy(proj.astype(np.float32)))
            self.bias.append(torch.from_numpy(bias.reshape(-1).astype(np.float32)))
            self.mix.append(torch.from_numpy(mix.transpose(1, 0, 2).astype(np.float32)))

    def score(self, samples: np.ndarray) -> PhoneScores:
        """Phone log-likelihoods of 16 kHz mono ``samples`` on the 100 Hz hop grid."""
        import torch

        feats = features(samples)
        n, n_ph = len(feats), len(self.names)
        if n == 0:
            return PhoneScores(self.names, np.zeros((0, n_ph), np.float32))
        picked = np.arange(0, n, STRIDE)
        if picked[-1] != n - 1:
            picked = np.append(picked, n - 1)
        # [N, streams, 26]: x^2 and x, stream-major so each block's slice is contiguous
        x = torch.from_numpy(np.ascontiguousarray(feats[picked].transpose(1, 0, 2)))
        x2 = torch.cat([x * x, x], dim=-1)
        out = torch.empty(len(picked), n_ph)
        # Reused buffers: fresh multi-MB tensors per block cost more in page faults than
        # the arithmetic itself.
        g = torch.empty(BLOCK, n_ph * N_GAUSS)
        top = torch.empty(BLOCK, n_ph, 1)
        s = torch.empty(n_ph, BLOCK, N_STATES)
        total = torch.empty(n_ph, BLOCK, N_STATES)
        with torch.inference_mode():
            for a in range(0, len(picked), BLOCK):
                b = min(BLOCK, len(picked) - a)
                gb, tb, sb, acc = g[:b], top[:b], s[:, :b], total[:, :b]
                for f in range(N_STREAMS):
                    torch.addmm(self.bias[f], x2[f, a:a + b], self.proj[f], out=gb)
                    g3 = gb.view(b, n_ph, N_GAUSS)
                    torch.amax(g3, dim=-1, keepdim=True, out=tb)
                    g3.sub_(tb).exp_()  # mixtures summed in the linear domain
                    torch.bmm(g3.transpose(0, 1), self.mix[f], out=sb)
                    sb.clamp_min_(1e-30).log_().add_(tb.transpose(0, 1))
                    if f == 0:
                        acc.copy_(sb)
                    else:
                        acc.add_(sb)
                out[a:a + b] = acc.amax(dim=-1).transpose(0, 1)
        scored = out.numpy()
        # back to every hop, linearly between scored frames
        hops = np.arange(n)
        k = np.clip(np.searchsorted(picked, hops, side="right") - 1, 0, len(picked) - 2)
        if len(picked) == 1:
            return PhoneScores(self.names, np.repeat(scored, n, axis=0))
        w = ((hops - picked[k]) / (picked[k + 1] - picked[k])).astype(np.float32)[:, None]
        return PhoneScores(self.names, scored[k] * (1 - w) + scored[k + 1] * w)


def acoustic_model() -> AcousticModel:
    """The shared model (loaded once, ~0.2 s)."""
    global _model
    with _lock:
        if _model is None:
            _model = AcousticModel()
    return _model


def phone_scores(samples: np.ndarray) -> PhoneScores:
    return acoustic_model().score(samples)


BEST_SCALE = 1.0  # 1-best labels: the frame scores nearly as they are
BEST_SMOOTH_HOPS = 3  # posteriors averaged over 30 ms before the 1-best choice
BEST_MIN_HOPS = 2  # a shorter run of one label continues the phone before it


def quiet_hops(samples: np.ndarray, n: int) -> np.ndarray:
    """bool[n]: hops (10 ms centred on 160 i) too quiet to be speech, by the phone loop's
    rule (digital silence has no phones, whatever a model scores for a spectrum it never
    saw)."""
    from .phone_recognition import QUIET_BELOW_PEAK_DB, QUIET_DB

    x = np.zeros(n * 160 + 160, np.float32)
    x[80:80 + len(samples)] = samples[: len(x) - 80]
    rms = np.sqrt(np.mean(x[: n * 160].reshape(n, 160) ** 2, axis=1))
    db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    return db < max(QUIET_DB, float(db.max(initial=-200.0)) - QUIET_BELOW_PEAK_DB)


def heard_phones(samples: np.ndarray, scores: PhoneScores | None = None
                 ) -> list[tuple[str, float]]:
    """Timed 1-best phones of 16 kHz mono ``samples`` from the frame scores: the phone
    with the highest posterior (averaged over ``BEST_SMOOTH_HOPS``) in every hop, runs
    shorter than ``BEST_MIN_HOPS`` merged into the phone before, quiet hops a pause.
    Same format as ``phone_recognition.recognise_phones`` (espeak mnemonic or PAUSE,
    start seconds) at ~1/30 of its cost; it heard 31 of 172 bilabial onsets within
    40 ms on espeak clips in training voices where the phone loop heard 35. ``scores``:
    this recording's ``phone_scores``, when the caller has them already."""
    from scipy.ndimage import uniform_filter1d

    from .phone_recognition import ARPABET_TO_ESPEAK, PAUSE

    scores = phone_scores(samples) if scores is None else scores
    n = len(scores.loglik)
    if n == 0:
        return []
    post = uniform_filter1d(scores.posteriors(BEST_SCALE), BEST_SMOOTH_HOPS, axis=0,
                            mode="nearest")
    names = np.array([ARPABET_TO_ESPEAK.get(p, PAUSE) for p in scores.names], dtype=object)
    labels = names[post.argmax(axis=1)]
    labels[quiet_hops(samples, n)] = PAUSE
    out: list[list] = []  # [label, first hop, end hop]
    start = 0
    for i in range(1, n + 1):
        if i < n and labels[i] == labels[start]:
            continue
        label, a, b = labels[start], start, i
        if out and (b - a < BEST_MIN_HOPS or out[-1][0] == label):
            out[-1][2] = b
        else:
            out.append([label, a, b])
        start = i
    return [(str(label), a / 100.0) for label, a, _ in out]
