"""espeak-ng speech from the bundled library: real audio with real phoneme timings."""

from __future__ import annotations

import numpy as np
import pytest

from backend.audio import compute_audio_features, load_audio
from backend.speech import synthesize
from shared.errors import InputError


def test_speech_is_audible_and_phonemes_are_timed() -> None:
    clip = synthesize("Hello there. This is a test of the speech engine.")
    assert clip.sample_rate > 8000 and 1.5 < clip.duration < 8.0
    times = [p.time for p in clip.phonemes]
    assert len(times) > 20 and times == sorted(times) and times[-1] <= clip.duration
    assert {"h", "s"} <= {p.phoneme for p in clip.phonemes}
    feats = compute_audio_features(load_audio((clip.samples, clip.sample_rate)))
    assert 0.3 < feats.vad.mean() < 1.0, "speech activity should cover most of the clip"
    assert np.median(feats.f0[feats.voiced]) == pytest.approx(120, abs=60)


def test_same_text_gives_the_same_phones_and_duration() -> None:
    # espeak-ng varies a few samples between calls, so compare what the animation uses.
    a, b = synthesize("Repeatable speech."), synthesize("Repeatable speech.")
    assert [p.phoneme for p in a.phonemes] == [p.phoneme for p in b.phonemes]
    assert a.duration == pytest.approx(b.duration, rel=0.01)


@pytest.mark.parametrize(("text", "kwargs", "match"), [
    ("   ", {}, "empty"),
    ("x" * 6000, {}, "characters"),
    ("hi", {"words_per_minute": 5}, "rate"),
    ("hi", {"voice": "klingon-xx"}, "no voice"),
])
def test_bad_requests_are_clear(text: str, kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        synthesize(text, **kwargs)
