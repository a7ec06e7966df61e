"""A tiny training run on real frames lowers the loss; resume continues the run."""

from __future__ import annotations

import numpy as np
import torch

from backend.motion.data import prepare_clip
from backend.motion.speech_vae import expand_latent
from backend.motion.train import MOUTH_IDS, TrainConfig, train
from tests.conftest import data_path


def speech_error(model, clip) -> float:
    """L1 of the deterministic (z = 0) prediction on the clip's training frames."""
    part = clip.part(held_out=False)
    with torch.inference_mode():
        h = model.speech.encode_audio(torch.from_numpy(part.mel)[None],
                                      torch.from_numpy(part.prosody)[None],
                                      torch.from_numpy(part.evidence)[None])
        z = expand_latent(torch.zeros(1, 64, 8), h.shape[-1])
        pred = model.speech.decode(h, z)[0].numpy()
    return float(np.abs(pred - part.blendshapes[:, MOUTH_IDS]).mean())


def test_tiny_training_lowers_the_loss_and_resumes(tmp_path) -> None:
    clip = prepare_clip(data_path("clips", "d12.mp4"))
    torch.manual_seed(0)
    from backend.motion.model import MotionModel

    before = speech_error(MotionModel().eval(), clip)
    cfg = TrainConfig(epochs=2, steps_per_epoch=6, batch=4, lr=3e-3, synth_clips=4,
                      real_copies=1, nonspeech_clips=2)
    model = train([clip], tmp_path, cfg, progress=False)
    after = speech_error(model, clip)
    assert after < 0.8 * before, (before, after)
    assert (tmp_path / "motion.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()
    assert len(cfg.history) == 2
    more = TrainConfig(epochs=3, steps_per_epoch=6, batch=4, lr=3e-3, synth_clips=4,
                       real_copies=1, nonspeech_clips=2)
    train([clip], tmp_path, more, resume=True, progress=False)
    assert [h["epoch"] for h in more.history] == [1, 2, 3]
    assert more.history[:2] == cfg.history


def test_music_clips_teach_a_resting_mouth_and_phone_speech_joins(tmp_path) -> None:
    """d12's sound track is music (no voice activity): with the speech-share gate it is
    either dropped or kept as a negative with a resting mouth; a phone-labelled real
    recording joins the speech data."""
    from backend.motion.train import build_speech_data, speech_share

    clip = prepare_clip(data_path("clips", "d12.mp4"))
    data_path("speech", "sun.wav")
    assert speech_share(clip) < 0.1
    assert np.nanmax(clip.blendshapes[:, MOUTH_IDS]) > 0.2  # the face does move
    dropped, _ = build_speech_data([clip], TrainConfig(min_speech_share=0.3))
    assert dropped == []
    kept, _ = build_speech_data([clip], TrainConfig(min_speech_share=0.3, nonspeech_rest=True,
                                                    phone_speech=("sun",)))
    assert [c.name for c in kept] == ["d12", "sun"]
    assert not kept[0].blendshapes[:, MOUTH_IDS].any()  # music: the mouth rests
    other = np.setdiff1d(np.arange(52), MOUTH_IDS)
    np.testing.assert_array_equal(kept[0].blendshapes[:, other],
                                  clip.part(held_out=False).blendshapes[:, other])
    assert kept[1].n_frames == kept[1].split > 0  # the recording's training part only
    assert kept[1].blendshapes[:, MOUTH_IDS].max() > 0.3
