"""The speech side of the motion model: phones heard or aligned from dialogue text, lips
that close on p/b/m, a style latent that changes the delivery, emotions that shape it,
and an ``auto`` emotion that does not depend on chunking."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from backend.audio import load_audio
from backend.motion.model import load_model
from backend.motion.performance import animate
from backend.speech.espeak import synthesize
from backend.speech.viseme_classes import viseme_class
from shared.blendshapes import BLENDSHAPE_INDEX
from shared.errors import InputError
from shared.landmarks import canonical_face, mouth_opening

JAW = BLENDSHAPE_INDEX["jawOpen"]
TEXT = "Peter bought a big blue umbrella in May."


@pytest.fixture(scope="module")
def model():
    return load_model()


@functools.lru_cache(maxsize=4)
def spoken(text: str = TEXT, voice: str = "en-gb-x-rp+f2"):
    clip = synthesize(text, voice, 160)
    return clip, load_audio((clip.samples, clip.sample_rate))


def bilabial_times(clip) -> list[tuple[float, float]]:
    ev = clip.phonemes
    return [(e.time, ev[i + 1].time if i + 1 < len(ev) else clip.duration)
            for i, e in enumerate(ev) if viseme_class(e.phoneme) == "bilabial"]


def closure_rate(anim, spans, fps: float = 25.0) -> float:
    gap = mouth_opening(anim.landmarks)
    rest = float(mouth_opening(canonical_face().vertices))
    top = float(np.percentile(gap, 95))
    closed = gap <= rest + 0.15 * (top - rest)
    hits = [closed[(anim.frame_times >= a - 1 / fps) & (anim.frame_times <= b + 1 / fps)].any()
            for a, b in spans]
    return float(np.mean(hits))


def test_dialogue_text_is_aligned_and_closes_the_lips(model) -> None:
    clip, audio = spoken()
    anim = animate(audio, 25, None, model=model, text=TEXT, blinks=False,
                   head_motion_amount=0.0)
    assert anim.meta["phones"] == "text" and anim.meta["warning"] == ""
    spans = bilabial_times(clip)
    assert len(spans) == 7
    assert closure_rate(anim, spans) >= 0.85  # a quality floor, not the target (bench)


def test_wrong_empty_and_bad_text(model, tmp_path) -> None:
    _, audio = spoken()
    wrong = animate(audio, 25, None, model=model, text="Seven silly swans sing softly.")
    assert wrong.meta["phones"] == "acoustic model"
    assert "does not match" in wrong.meta["warning"] or "not used" in wrong.meta["warning"]
    plain = animate(audio, 25, None, model=model)
    blank = animate(audio, 25, None, model=model, text="   \n")
    np.testing.assert_array_equal(plain.blendshapes, blank.blendshapes)  # empty: ignored
    assert blank.meta["warning"] == ""
    with pytest.raises(InputError, match="string"):
        animate(audio, 25, None, model=model, text=42)
    from backend.commands.animate_cmd import read_text_file

    bad = tmp_path / "line.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_text_file(str(bad))
    good = tmp_path / "ok.txt"
    good.write_text("Café au lait.", encoding="utf-8")
    assert read_text_file(str(good)) == "Café au lait."


def test_variation_changes_the_delivery_and_keeps_the_sync(model) -> None:
    """Fails on weights whose style latent collapsed (seeds gave jaw r 1.000)."""
    clip, audio = spoken()
    runs = [animate(audio, 25, None, model=model, seed=s, variation=1.0, text=TEXT,
                    blinks=False, head_motion_amount=0.0) for s in (0, 1)]
    det = animate(audio, 25, None, model=model, text=TEXT, blinks=False,
                  head_motion_amount=0.0)
    jaw = [r.blendshapes[:, JAW] for r in runs]
    assert np.corrcoef(jaw[0], jaw[1])[0, 1] < 0.97
    assert np.abs(jaw[0] - jaw[1]).mean() > 0.1 * det.blendshapes[:, JAW].std()
    spans = bilabial_times(clip)
    for r in runs:
        assert closure_rate(r, spans) >= closure_rate(det, spans) - 0.15


def test_emotion_shapes_the_delivery_not_an_offset(model) -> None:
    _, audio = spoken()
    jaw = {e: animate(audio, 25, f"0:{e}", model=model, blinks=False,
                      head_motion_amount=0.0).blendshapes[:, JAW]
           for e in ("neutral", "angry", "sad")}
    speaking = jaw["neutral"] > 0.05
    assert jaw["angry"][speaking].std() > 1.1 * jaw["neutral"][speaking].std()
    assert jaw["sad"][speaking].std() < 0.9 * jaw["neutral"][speaking].std()
    delta = jaw["angry"] - jaw["neutral"]
    assert np.corrcoef(delta, jaw["neutral"])[0, 1] > 0.5  # wider where it speaks


@pytest.mark.parametrize("chunk", [97, 512])
def test_auto_emotion_does_not_depend_on_chunking(model, chunk: int) -> None:
    from tests.motion.test_motion_animate import speechlike

    audio = speechlike(30.0)
    whole = animate(audio, 30, "auto", model=model, chunk_frames=1024, blinks=False)
    parts = animate(audio, 30, "auto", model=model, chunk_frames=chunk, blinks=False)
    np.testing.assert_allclose(parts.emotion_weights, whole.emotion_weights, atol=1e-6)
    np.testing.assert_allclose(parts.blendshapes, whole.blendshapes, atol=1e-4)


def test_tones_rest_the_mouth(model) -> None:
    from backend.motion.synthetic import tone_sounds

    _, audio = spoken()
    speech_jaw = animate(audio, 25, None, model=model).blendshapes[:, JAW].mean()
    for name, x in tone_sounds(np.random.default_rng(5), 2.0).items():
        anim = animate(load_audio((x, 16000)), 25, None, model=model)
        assert anim.blendshapes[:, JAW].mean() <= 0.2 * speech_jaw, name
