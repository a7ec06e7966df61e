"""Train the ``auto`` emotion classifier on generated acted speech (``acted_speech``).

``facecast motion train-emotion`` runs :func:`train_emotion`: recordings of the training
voices speaking the training sentences, each line with an emotion's prosody rule, go
through the product's own audio path (16 kHz, features, frame grid at a random common fps,
``features.prosody``) and ``emotion_from_audio.window_features``; a one-hidden-layer
network is fitted to the line labels of the speech frames. Held-out voices and sentences
are never seen here; ``facecast bench emotion`` scores them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .acted_speech import ACTED_EMOTIONS, acted_recording
from .emotion_from_audio import FEATURE_NAMES, EmotionClassifier, window_features

FPS_CHOICES = (24.0, 25.0, 30.0, 50.0, 60.0)
SAME_EMOTION_SHARE = 0.3  # recordings spoken in one emotion throughout
TRAINING_RECORDINGS = 320  # the shipped weights' training set (seed 0)
FRAME_STRIDE = 3  # frames kept per training example (neighbours are near copies)


@dataclass(frozen=True)
class LabelledRecording:
    """A generated recording on the frame grid: ``prosody`` [T, 4] at ``fps``, ``labels``
    [T] (index into ACTED_EMOTIONS, -1 between lines), ``lines`` (first, end frame,
    label) per line, and the voice."""

    prosody: np.ndarray
    fps: float
    labels: np.ndarray
    lines: tuple[tuple[int, int, int], ...]
    voice: str


def labelled_recordings(voices: tuple[str, ...], sentences: tuple[str, ...], n: int,
                        seed: int, n_lines: int = 4,
                        emotions: tuple[str, ...] = ACTED_EMOTIONS,
                        same_share: float = SAME_EMOTION_SHARE,
                        progress: Callable[[int, int], None] | None = None
                        ) -> list[LabelledRecording]:
    """``n`` recordings, voices taken in turn; deterministic for a seed."""
    from backend.audio import compute_frame_features
    from backend.audio.features import compute_audio_features
    from backend.audio.loading import Audio
    from shared.audio import SAMPLE_RATE

    from .features import prosody

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        voice = voices[i % len(voices)]
        rec = acted_recording(rng, voice, sentences, n_lines, emotions,
                              same_emotion=bool(rng.random() < same_share))
        fps = float(rng.choice(FPS_CHOICES))
        audio = Audio(rec.samples, SAMPLE_RATE)
        frames = compute_frame_features(audio, fps, context_hops=0,
                                        features=compute_audio_features(audio))
        pro = prosody(frames)
        labels = np.full(len(pro), -1, np.int64)
        lines = []
        for start, end, emotion in rec.spans:
            a, b = int(np.ceil(start * fps)), min(int(end * fps), len(pro))
            labels[a:b] = ACTED_EMOTIONS.index(emotion)
            lines.append((a, b, ACTED_EMOTIONS.index(emotion)))
        out.append(LabelledRecording(pro, fps, labels, tuple(lines), voice))
        if progress is not None:
            progress(i + 1, n)
    return out


def examples(recordings: list[LabelledRecording], relative: bool = True
             ) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, F], labels [N]) of the speech frames inside lines, every
    FRAME_STRIDE-th."""
    xs, ys = [], []
    for r in recordings:
        f = window_features(r.prosody, r.fps, relative)
        keep = (r.labels >= 0) & (r.prosody[:, 3] > 0.5)
        keep[np.arange(len(keep)) % FRAME_STRIDE != 0] = False
        xs.append(f[keep])
        ys.append(r.labels[keep])
    return np.concatenate(xs), np.concatenate(ys)


def fit_classifier(x: np.ndarray, y: np.ndarray, hidden: int = 24, steps: int = 800,
                   weight_decay: float = 1e-3, seed: int = 0) -> EmotionClassifier:
    """Full-batch Adam on class-balanced cross-entropy; returns the numpy classifier."""
    import torch

    torch.manual_seed(seed)
    mean = x.mean(axis=0)
    scale = np.maximum(x.std(axis=0), 1e-3)
    xt = torch.as_tensor((x - mean) / scale, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    counts = np.bincount(y, minlength=len(ACTED_EMOTIONS)).astype(np.float64)
    balance = torch.as_tensor(counts.sum() / np.maximum(counts, 1) / len(counts),
                              dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.Tanh(),
                              torch.nn.Linear(hidden, len(ACTED_EMOTIONS)))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt), yt, weight=balance)
        loss.backward()
        opt.step()
    l1, l2 = net[0], net[2]
    return EmotionClassifier(mean=mean.astype(np.float64), scale=scale.astype(np.float64),
                             w1=l1.weight.detach().numpy().T.astype(np.float64),
                             b1=l1.bias.detach().numpy().astype(np.float64),
                             w2=l2.weight.detach().numpy().T.astype(np.float64),
                             b2=l2.bias.detach().numpy().astype(np.float64))


def train_emotion(out: Path, recordings: int = TRAINING_RECORDINGS, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> EmotionClassifier:
    """Generate, fit, write ``out`` (JSON); prints the training accuracy."""
    from .acted_speech import TRAIN_VOICES, split_sentences
    from .emotion_from_audio import save_classifier

    train_sentences, _ = split_sentences()
    recs = labelled_recordings(TRAIN_VOICES, train_sentences, recordings, seed,
                               progress=progress)
    x, y = examples(recs)
    clf = fit_classifier(x, y, seed=seed)
    acc = float((clf.probabilities(x).argmax(axis=1) == y).mean())
    print(f"trained on {len(y)} frames of {recordings} recordings ({len(TRAIN_VOICES)} "
          f"voices, {len(train_sentences)} sentences, {len(FEATURE_NAMES)} features): "
          f"training frame accuracy {acc:.2f} (chance {1 / len(ACTED_EMOTIONS):.2f})")
    save_classifier(clf, out)
    return clf
