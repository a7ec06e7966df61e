"""Trained voice activity: the Silero VAD network, whose weights ship inside its wheel.

Why a trained detector: an energy-over-floor check cannot tell a voice from a music bed
or a quiet talker from room tone (it would open the mouth on a loud chord). Silero VAD
is a small network trained on thousands of hours of speech, music and noise in many
languages; it gives a speech probability per 32 ms chunk of 16 kHz audio.

How it is loaded: the ``silero-vad`` wheel (MIT; it requires only torch and packaging,
no torchaudio) carries ``data/silero_vad.jit`` (TorchScript). We read that file's weights
into our own torch module of the same architecture (``torch.jit.load`` runs no Python of
the package) and never import the package: its ``model`` module calls
``torch.set_num_threads(1)`` at import, which would slow the whole backend.
Nothing is downloaded. ``tests/audio/test_audio_vad.py`` checks our module against the wheel's
own TorchScript model, chunk by chunk.

Speed: the network is a per-chunk convolutional encoder (an STFT as a convolution, four
1-D convolutions) followed by an LSTM cell carried from chunk to chunk. The encoder runs
on every chunk of the audio at once and the recurrence as one ``nn.LSTM`` pass, which is
exactly the chunk-by-chunk stream (same state, same order) at a fraction of the cost
of one call per chunk (1 875 calls per minute of audio).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from shared.errors import FacecastError

CHUNK = 512  # samples per step (32 ms), what the 16 kHz network expects
CONTEXT = 64  # samples of the previous chunk each step also sees
ENCODER_BLOCK = 4096  # chunks per encoder pass (~2 min of audio): bounded memory
THRESHOLD = 0.5  # speech probability above this is speech (Silero's own default)
FILL_GAP_HOPS = 15  # bridge pauses shorter than 150 ms inside a phrase
MIN_RUN_HOPS = 5  # drop blips shorter than 50 ms
HOP = 160  # the feature hop grid of backend.audio.features (100 per second)
WEIGHTS_FILE = "silero_vad.jit"

_lock = threading.Lock()
_net = None


def package_file(name: str) -> Path:
    """A file in the installed silero-vad wheel's ``data`` folder (package not imported)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / "data" / name
            if path.is_file():
                return path
    raise FacecastError("voice activity detection needs the silero-vad wheel's model file",
                        "pip install silero-vad==6.2.3 (a Facecast dependency; it needs no "
                        "torchaudio)", code="missing_dependency")


def _build():
    import torch
    from torch import nn

    class SileroNet(nn.Module):
        """Silero VAD v5/v6 at 16 kHz, laid out for whole-recording inference."""

        def __init__(self) -> None:
            super().__init__()
            self.stft_conv = nn.Conv1d(1, 258, 256, stride=128, bias=False)
            self.conv1 = nn.Conv1d(129, 128, 3, padding=1)
            self.conv2 = nn.Conv1d(128, 64, 3, stride=2, padding=1)
            self.conv3 = nn.Conv1d(64, 64, 3, stride=2, padding=1)
            self.conv4 = nn.Conv1d(64, 128, 3, padding=1)
            self.lstm = nn.LSTM(128, 128, batch_first=True)
            self.final_conv = nn.Conv1d(128, 1, 1)

        def encode(self, windows: torch.Tensor) -> torch.Tensor:
            """[N, CONTEXT + CHUNK] samples -> [N, 128] per-chunk features."""
            x = nn.functional.pad(windows[:, None], (0, 64), mode="reflect")
            x = self.stft_conv(x)
            x = (x[:, :129] ** 2 + x[:, 129:] ** 2).sqrt()
            for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
                x = torch.relu(conv(x))
            return x[..., 0]

        def head(self, h: torch.Tensor) -> torch.Tensor:
            """LSTM outputs [N, 128] -> probabilities [N]."""
            return torch.sigmoid(self.final_conv(torch.relu(h)[..., None]))[:, 0, 0]

    net = SileroNet()
    scripted = torch.jit.load(str(package_file(WEIGHTS_FILE)), map_location="cpu")
    names = {"stft.forward_basis_buffer": "stft_conv.weight",
             "decoder.rnn.weight_ih": "lstm.weight_ih_l0",
             "decoder.rnn.weight_hh": "lstm.weight_hh_l0",
             "decoder.rnn.bias_ih": "lstm.bias_ih_l0", "decoder.rnn.bias_hh": "lstm.bias_hh_l0",
             "decoder.decoder.2.weight": "final_conv.weight",
             "decoder.decoder.2.bias": "final_conv.bias",
             **{f"encoder.{i}.reparam_conv.{p}": f"conv{i + 1}.{p}" for i in range(4)
                for p in ("weight", "bias")}}
    state = {names[k.removeprefix("_model.")]: v for k, v in scripted.state_dict().items()
             if k.startswith("_model.")}
    net.load_state_dict(state)
    return net.eval()


def _model():
    global _net
    with _lock:
        if _net is None:
            _net = _build()
    return _net


def speech_probability(samples: np.ndarray) -> np.ndarray:
    """Speech probability float32[ceil(N / CHUNK)] for 16 kHz mono samples, one per
    32 ms chunk (chunk ``i`` covers samples ``i*CHUNK .. (i+1)*CHUNK``), identical to
    streaming the chunks through the network one after another from a fresh state."""
    import torch

    x = np.asarray(samples, np.float32)
    n = -(-len(x) // CHUNK)
    if n == 0:
        return np.zeros(0, np.float32)
    padded = np.zeros(CONTEXT + n * CHUNK, np.float32)
    padded[CONTEXT:CONTEXT + len(x)] = x
    windows = np.lib.stride_tricks.sliding_window_view(padded, CONTEXT + CHUNK)[::CHUNK]
    net = _model()
    with torch.inference_mode():
        feats = torch.cat([net.encode(torch.from_numpy(np.ascontiguousarray(
            windows[i:i + ENCODER_BLOCK]))) for i in range(0, n, ENCODER_BLOCK)])
        h, _ = net.lstm(feats[None])
        return net.head(h[0]).numpy().astype(np.float32)


def probability_on_hops(prob: np.ndarray, n_hops: int) -> np.ndarray:
    """Chunk probabilities -> float32[n_hops] on the 100 Hz hop grid (hop ``i`` centred on
    sample ``i * HOP``), by linear interpolation between chunk centres."""
    if n_hops <= 0:
        return np.zeros(0, np.float32)
    if prob.size == 0:
        return np.zeros(n_hops, np.float32)
    centres = (np.arange(prob.size) + 0.5) * CHUNK
    return np.interp(np.arange(n_hops) * HOP, centres, prob).astype(np.float32)


def smooth_activity(active: np.ndarray) -> np.ndarray:
    """Bridge short pauses inside a phrase and drop short blips (hop units)."""
    active = np.asarray(active, bool)
    if not active.any():
        return active
    closed = minimum_filter1d(maximum_filter1d(active, FILL_GAP_HOPS, mode="nearest"),
                              FILL_GAP_HOPS, mode="nearest")
    return maximum_filter1d(minimum_filter1d(closed, MIN_RUN_HOPS, mode="nearest"),
                            MIN_RUN_HOPS, mode="nearest")


def voice_activity(samples: np.ndarray, n_hops: int) -> tuple[np.ndarray, np.ndarray]:
    """(speech probability float32[n_hops], speech flag bool[n_hops]) on the hop grid."""
    prob = probability_on_hops(speech_probability(samples), n_hops)
    return prob, smooth_activity(prob > THRESHOLD)
