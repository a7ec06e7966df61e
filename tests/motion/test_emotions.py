"""Emotion vocabulary: parsing, JSON, validation, sampling and per-frame arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shared.emotions import (
    EMOTION_ALIASES,
    EMOTIONS,
    EmotionKey,
    canonical_emotion,
    dominant_emotions,
    format_emotion_string,
    from_json,
    load_emotion_track,
    parse_emotion_string,
    sample_emotion_track,
    to_json,
    validate_emotion_arrays,
)
from shared.errors import InputError

TRACK = "0:neutral,40:angry@0.7,90:happy+surprised@0.5,120:happy*0.6+sad*0.4@0.8"


def test_emotion_order_is_mead():
    assert EMOTIONS == ("neutral", "happy", "sad", "angry", "surprised", "fearful",
                        "disgusted", "contempt")
    assert all(target in EMOTIONS for target in EMOTION_ALIASES.values())


def test_parse_string_form():
    keys = parse_emotion_string(TRACK)
    assert [k.frame for k in keys] == [0, 40, 90, 120]
    assert keys[0].weights == {"neutral": 1.0} and keys[0].intensity == 1.0
    assert keys[1].weights == {"angry": 1.0} and keys[1].intensity == pytest.approx(0.7)
    assert keys[2].weights == {"happy": 1.0, "surprised": 1.0}
    assert keys[3].weights == {"happy": pytest.approx(0.6), "sad": pytest.approx(0.4)}
    assert keys[3].intensity == pytest.approx(0.8)
    np.testing.assert_allclose(keys[3].vector(), [0, 0.6, 0.4, 0, 0, 0, 0, 0], rtol=1e-6)


def test_parse_tolerates_case_whitespace_aliases_and_order():
    keys = parse_emotion_string(" 50 : Joy * 0.5 + FEAR @ 0.25 , 10:Surprise ")
    assert [k.frame for k in keys] == [10, 50]
    assert keys[0].weights == {"surprised": 1.0}
    assert keys[1].weights == {"happy": 0.5, "fearful": 1.0}
    assert keys[1].intensity == 0.25


def test_string_round_trip():
    keys = parse_emotion_string(TRACK)
    assert format_emotion_string(keys) == TRACK
    zero = [EmotionKey(3, {"sad": 0.0}, 0.5)]
    assert zero[0].weights == {}
    assert format_emotion_string(zero) == "3:neutral*0@0.5"
    assert parse_emotion_string(format_emotion_string(zero)) == zero
    odd = [EmotionKey(7, {"happy": 0.1 + 0.2}, 1 / 3)]
    assert parse_emotion_string(format_emotion_string(odd)) == odd


def test_json_round_trip_and_loader(tmp_path):
    keys = parse_emotion_string(TRACK)
    text = to_json(keys)
    assert json.loads(text)[3] == {"frame": 120, "weights": {"happy": 0.6, "sad": 0.4},
                                   "intensity": 0.8}
    assert from_json(text) == keys
    assert load_emotion_track(text) == keys
    assert load_emotion_track(TRACK) == keys
    path = tmp_path / "track.json"
    path.write_text(text, encoding="utf-8")
    assert load_emotion_track(path) == keys
    assert load_emotion_track(str(path)) == keys
    # intensity is optional in JSON; integral floats are fine as frames
    assert from_json('[{"frame": 5.0, "weights": {"sad": 1}}]') == [EmotionKey(5, {"sad": 1})]


@pytest.mark.parametrize(("text", "names", "fix"), [
    ("0:angyr", ['"angyr"'], 'did you mean "angry"'),
    ("0:hapy*0.5", ['"hapy"'], 'did you mean "happy"'),
    ("0:xyzzy", ['"xyzzy"'], "valid emotions: neutral, happy, sad"),
    ("0:happy*1.5", ["1.5", "happy"], "between 0 and 1"),
    ("0:happy*-0.1", ["-0.1", "happy"], "between 0 and 1"),
    ("0:happy@2", ["2", "intensity"], "between 0 and 1"),
    ("0:happy@nan", ["nan", "intensity"], "between 0 and 1"),
    ("0:happy*inf", ["inf", "happy"], "between 0 and 1"),
    ("-3:happy", ["-3"], ">= 0"),
    ("4.5:happy", ['"4.5"'], "integer frame"),
    ("0:happy,0:sad", ["frame 0"], "one key per frame"),
    ("", ["empty"], "e.g."),
    ("happy", ['"happy"'], "frame:emotion"),
    ("0:happy*x", ['"x"'], "number between 0 and 1"),
    ("0:happy+joy", ["'happy'", "'joy'"], "once per key"),
    ("0:happy@0.5@0.2", ['"0:happy@0.5@0.2"'], "one intensity"),
    ("0:+sad", ["empty emotion name"], "happy*0.6"),
])
def test_bad_strings_name_problem_and_fix(text, names, fix):
    with pytest.raises(InputError) as info:
        parse_emotion_string(text)
    for name in names:
        assert name in info.value.problem
    assert fix in info.value.fix


def test_bad_json(tmp_path):
    for text, needle in [("not json", "not valid JSON"), ('{"frame": 0}', "not a list"),
                         ("[]", "no keys"), ('[{"frame": 0}]', '"weights"'),
                         ('[{"frame": 0, "weights": {"sad": 1}, "x": 1}]', "'x'"),
                         ('[{"frame": 0, "weights": {"sad": "lots"}}]', "'lots'"),
                         ('[{"frame": 0, "weights": ["sad"]}]', "mapping")]:
        with pytest.raises(InputError, match=needle):
            from_json(text)
    with pytest.raises(InputError, match="does not exist"):
        load_emotion_track(tmp_path / "nope.json")


def test_canonical_emotion():
    assert canonical_emotion("Anger") == "angry"
    assert canonical_emotion("disgust") == "disgusted"
    with pytest.raises(InputError) as info:
        canonical_emotion("suprised")
    assert '"surprised"' in info.value.fix


def test_sampling_holds_outside_and_eases_between_keys():
    keys = parse_emotion_string("10:happy@0.2,20:sad@1")
    weights, intensity = sample_emotion_track(keys, 0, 31)
    assert weights.shape == (31, 8) and intensity.shape == (31,)
    assert weights.dtype == np.float32 and intensity.dtype == np.float32
    happy, sad = EMOTIONS.index("happy"), EMOTIONS.index("sad")
    # hold before the first key and after the last
    assert np.all(weights[:11, happy] == 1) and np.all(weights[:11, sad] == 0)
    assert np.all(intensity[:11] == np.float32(0.2))
    assert np.all(weights[20:, sad] == 1) and np.all(intensity[20:] == 1)
    # exactly half way at the midpoint, monotone, and eased (slow near keys)
    assert weights[15, sad] == pytest.approx(0.5)
    assert intensity[15] == pytest.approx(0.6)
    assert np.all(np.diff(weights[10:21, sad]) > 0)
    assert weights[11, sad] < 0.1 - 1e-3  # smoothstep(0.1) = 0.028 < linear 0.1
    np.testing.assert_allclose(weights[:, happy] + weights[:, sad], 1.0, atol=1e-6)


def test_sampling_offset_window_and_single_key():
    keys = parse_emotion_string("100:angry@0.5")
    weights, intensity = sample_emotion_track(keys, 0, 4)
    assert np.all(weights[:, EMOTIONS.index("angry")] == 1) and np.all(intensity == 0.5)
    keys = parse_emotion_string("0:happy,10:sad")
    full, _ = sample_emotion_track(keys, 0, 11)
    window, _ = sample_emotion_track(keys, 5, 3)
    np.testing.assert_array_equal(window, full[5:8])


def test_validate_emotion_arrays():
    w = np.zeros((4, 8), np.float64)
    w[:, 1] = 1.0 + 1e-8  # float noise from Blender is clipped, not rejected
    out_w, out_s = validate_emotion_arrays(w, [0.5] * 4, n_frames=4)
    assert out_w.dtype == np.float32 and out_w.max() == 1.0 and out_s.shape == (4,)
    bad = w.copy()
    bad[2, 3] = np.nan
    with pytest.raises(InputError, match=r"NaN.*frame offset 2 \(angry\)"):
        validate_emotion_arrays(bad, np.ones(4))
    bad = np.zeros((4, 8))
    bad[1, 6] = 1.5
    with pytest.raises(InputError, match=r"1\.5.*frame offset 1 \(disgusted\)"):
        validate_emotion_arrays(bad, np.ones(4))
    with pytest.raises(InputError, match=r"intensity -0\.5"):
        validate_emotion_arrays(np.zeros((4, 8)), [1, 1, -0.5, 1])
    with pytest.raises(InputError, match=r"shape \(4, 7\)"):
        validate_emotion_arrays(np.zeros((4, 7)), np.ones(4))
    with pytest.raises(InputError, match=r"expected \(4,\)"):
        validate_emotion_arrays(np.zeros((4, 8)), np.ones(3))
    with pytest.raises(InputError, match="expected 5"):
        validate_emotion_arrays(np.zeros((4, 8)), np.ones(4), n_frames=5)


def test_dominant_emotions():
    w = np.zeros((4, 8), np.float32)
    w[0, EMOTIONS.index("happy")] = 0.6
    w[0, EMOTIONS.index("sad")] = 0.4
    w[1, EMOTIONS.index("contempt")] = 0.3
    w[2, EMOTIONS.index("angry")] = 0.9
    w[3, EMOTIONS.index("sad")] = 0.02
    labels = dominant_emotions(w, np.array([1, 1, 0.01, 1], np.float32))
    assert labels == ["happy", "contempt", "neutral", "neutral"]
