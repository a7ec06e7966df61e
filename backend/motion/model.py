"""The motion model bundle (speech VAE + emotion bank + LDM + classifier) and its file.

One ``.pt`` file holds every state dict plus a small JSON-able ``meta`` dict (format
version, training command, head-motion statistics), loaded with ``weights_only=True`` so a
weights file can never run code. The default model ships in ``weights/motion.pt``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from shared.errors import InputError

from ..atomic_file import write_atomic
from .emotion import EmotionBank
from .ldm import EmotionClassifier, LandmarkDeformationModel
from .speech_vae import SpeechVAE

FORMAT = 1
DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "motion.pt"


class MotionModel(nn.Module):
    """All learned parts; ``meta`` travels with the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.speech = SpeechVAE()
        self.bank = EmotionBank()
        self.ldm = LandmarkDeformationModel()
        self.classifier = EmotionClassifier()
        self.meta: dict = {"format": FORMAT}

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        """Atomic write (temp file + rename): an interrupted save never corrupts weights."""
        blob = {"meta": self.meta, "state": self.state_dict(), **(extra or {})}
        write_atomic(path, lambda f: torch.save(blob, f))


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu"
               ) -> MotionModel:
    """Load a motion model (default: the shipped weights) in eval mode."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise InputError(f"motion weights {path} are missing",
                         "train them with `facecast motion train --out DIR` or reinstall "
                         "Facecast to restore the default weights")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
        model = MotionModel()
        model.load_state_dict(blob["state"])
    except (RuntimeError, KeyError, OSError, ValueError) as exc:
        raise InputError(f"motion weights {path} are damaged or from another version ({exc})",
                         "retrain with `facecast motion train` or reinstall Facecast") from exc
    model.meta = dict(blob.get("meta", {}))
    return model.to(device).eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
