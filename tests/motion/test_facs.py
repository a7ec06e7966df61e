"""FACS tables: AU mapping, emotion prototypes and their signatures."""

from __future__ import annotations

import numpy as np
import pytest

from backend.motion.facs import (
    AU_BLENDSHAPES,
    EMOTION_AUS,
    FACS_SIGNATURES,
    SIGNATURE_FEATURES,
    UNILATERAL_EMOTIONS,
    AUActivation,
    au_blendshapes,
    emotion_blendshapes,
    emotion_prototype,
    signature_features,
)
from shared.blendshapes import ARKIT_BLENDSHAPES, BLENDSHAPE_INDEX
from shared.emotions import EMOTIONS
from shared.errors import InputError


def _ch(shapes: np.ndarray, name: str) -> float:
    return float(shapes[..., BLENDSHAPE_INDEX[name]])


def test_tables_use_real_names_and_known_aus():
    for shapes in AU_BLENDSHAPES.values():
        assert set(shapes) <= set(ARKIT_BLENDSHAPES)
        assert all(0 < w <= 1 for w in shapes.values())
    for aus in EMOTION_AUS.values():
        assert all(a.au in AU_BLENDSHAPES for a in aus)
    assert set(FACS_SIGNATURES) == set(EMOTIONS)
    for signs in FACS_SIGNATURES.values():
        assert tuple(signs) == SIGNATURE_FEATURES
        assert set(signs.values()) <= {-1, 0, 1}


def test_brief_au_sets():
    def aus(name: str) -> set[int]:
        return {a.au for a in EMOTION_AUS[name]}
    assert aus("happy") == {6, 12}
    assert aus("sad") == {1, 4, 15}
    assert aus("surprised") == {1, 2, 5, 26}
    assert aus("angry") == {4, 5, 7, 23}
    assert {1, 2, 4, 5, 7, 20, 26} <= aus("fearful")
    assert {9, 15, 16} <= aus("disgusted")
    assert aus("neutral") == set()


def test_prototypes_have_defining_channels():
    happy, sad = emotion_prototype("happy"), emotion_prototype("sad")
    assert _ch(happy, "mouthSmileLeft") > 0 and _ch(happy, "cheekSquintRight") > 0
    assert _ch(sad, "browInnerUp") > 0 and _ch(sad, "mouthFrownLeft") > 0
    surprised, angry = emotion_prototype("surprised"), emotion_prototype("angry")
    assert _ch(surprised, "browOuterUpLeft") > 0 and _ch(surprised, "jawOpen") > 0
    assert _ch(angry, "browDownLeft") > 0 and _ch(angry, "mouthPressRight") > 0
    assert _ch(emotion_prototype("disgusted"), "noseSneerLeft") > 0
    assert not emotion_prototype("neutral").any()
    assert emotion_prototype("Joy")[BLENDSHAPE_INDEX["mouthSmileLeft"]] > 0  # alias
    with pytest.raises(InputError, match="angry"):
        emotion_prototype("angyr")


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_prototype_obeys_signature(emotion):
    features = signature_features(emotion_prototype(emotion))
    for name, value in zip(SIGNATURE_FEATURES, features, strict=True):
        sign = FACS_SIGNATURES[emotion][name]
        if sign:
            assert np.sign(value) == sign, (emotion, name, value)


def test_signatures_match_brief():
    assert FACS_SIGNATURES["happy"]["lip_corner_height"] == 1
    assert FACS_SIGNATURES["sad"]["inner_brow_raise"] == 1
    assert FACS_SIGNATURES["sad"]["lip_corner_height"] == -1
    assert FACS_SIGNATURES["surprised"]["brow_raise"] == 1
    assert FACS_SIGNATURES["surprised"]["jaw_opening"] == 1
    assert FACS_SIGNATURES["angry"]["brow_raise"] == -1


def test_signature_features_detect_wrong_face():
    # A frown must not pass as happy: the check is able to fail.
    frown = emotion_prototype("sad")
    assert np.sign(signature_features(frown)[2]) != FACS_SIGNATURES["happy"]["lip_corner_height"]


def test_contempt_is_asymmetric():
    face = emotion_prototype("contempt")
    assert UNILATERAL_EMOTIONS["contempt"] == "right"
    assert _ch(face, "mouthSmileRight") > 0 and _ch(face, "mouthDimpleRight") > 0
    assert _ch(face, "mouthSmileLeft") == 0 and _ch(face, "mouthDimpleLeft") == 0
    for name in ("happy", "sad", "surprised", "angry"):
        other = emotion_prototype(name)
        assert _ch(other, "mouthSmileLeft") == _ch(other, "mouthSmileRight")


def test_unilateral_au_halves_centre_channels():
    both = au_blendshapes([AUActivation(26, "E")])
    left = au_blendshapes([AUActivation(26, "E", "left")])
    assert _ch(left, "jawOpen") == pytest.approx(_ch(both, "jawOpen") / 2)
    wink = au_blendshapes([AUActivation(46, "E", "left")])
    assert _ch(wink, "eyeBlinkLeft") == 1 and _ch(wink, "eyeBlinkRight") == 0


def test_more_happy_weight_means_bigger_smile():
    levels = np.linspace(0, 1, 6, dtype=np.float32)
    weights = np.zeros((6, 8), np.float32)
    weights[:, EMOTIONS.index("happy")] = levels
    out = emotion_blendshapes(weights, np.full(6, 0.9, np.float32))
    assert out.shape == (6, 52) and out.dtype == np.float32
    smile = out[:, BLENDSHAPE_INDEX["mouthSmileLeft"]]
    assert smile[0] == 0 and np.all(np.diff(smile) > 0)
    # intensity scales the same way
    out = emotion_blendshapes(np.tile(weights[-1], (6, 1)), levels)
    assert np.all(np.diff(out[:, BLENDSHAPE_INDEX["mouthSmileRight"]]) > 0)


def test_mix_is_weighted_sum_clipped():
    weights = np.zeros((1, 8), np.float32)
    weights[0, EMOTIONS.index("happy")] = 0.5
    weights[0, EMOTIONS.index("surprised")] = 1.0
    out = emotion_blendshapes(weights, np.ones(1, np.float32))[0]
    expected = 0.5 * emotion_prototype("happy") + emotion_prototype("surprised")
    np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-6)
    weights[:] = 1.0
    out = emotion_blendshapes(weights, np.ones(1, np.float32))
    assert out.max() <= 1.0 and out.min() >= 0.0
    with pytest.raises(InputError):
        emotion_blendshapes(weights * 2, np.ones(1, np.float32))
