"""The ``auto`` emotion from the voice: acted espeak speech, the classifier, the track,
the training command and the bench, on small real sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.bench.emotion_bench import acted_rows, old_prosody_rule, shown_emotion
from backend.cli import main
from backend.motion.acted_speech import (
    ACTED_EMOTIONS,
    RULES,
    TEST_VOICES,
    TRAIN_VOICES,
    acted_ssml,
    split_sentences,
)
from backend.motion.emotion import estimate_emotion_from_prosody
from backend.motion.emotion_from_audio import (
    FEATURE_NAMES,
    INTENSITY_CAP,
    WEIGHTS_FILE,
    EmotionClassifier,
    load_classifier,
    window_features,
)
from backend.motion.emotion_train import examples, fit_classifier, labelled_recordings
from shared.emotions import EMOTIONS
from shared.errors import FacecastError

TRAIN, TEST = split_sentences()


def test_voices_and_sentences_held_out() -> None:
    assert not set(TRAIN) & set(TEST) and len(TEST) >= 10
    assert not set(TRAIN_VOICES) & set(TEST_VOICES)
    accents = {v.split("+")[0] for v in TRAIN_VOICES}
    variants = {v.split("+")[1] for v in TRAIN_VOICES}
    for v in TEST_VOICES:
        assert v.split("+")[0] not in accents and v.split("+")[1] not in variants


def test_ssml_carries_the_rule() -> None:
    rng = np.random.default_rng(0)
    sad = acted_ssml("We walked along the river until the sun went down.", "sad", rng)
    assert sad.startswith("<speak><prosody pitch=") and "<break" in sad
    angry = acted_ssml("We walked along the river until the sun went down.", "angry", rng)
    assert "<emphasis>walked</emphasis>" in angry
    assert set(RULES) == set(ACTED_EMOTIONS) and "contempt" not in RULES


@pytest.fixture(scope="module")
def two_styles():
    """Sad vs surprised lines: trained on two voices, tested on a held-out voice and
    held-out sentences."""
    pair = ("sad", "surprised")
    train = labelled_recordings(TRAIN_VOICES[:2], TRAIN, 8, seed=3, emotions=pair)
    test = labelled_recordings(TEST_VOICES[:2], TEST, 8, seed=4, emotions=pair,
                               same_share=0.0)
    return train, test


def test_generated_lines_do_what_the_rules_say(two_styles) -> None:
    train, _ = two_styles
    by = {0: [], 1: []}
    for r in train:
        f = window_features(r.prosody, r.fps, relative=False)
        for a, b, label in r.lines:
            speech = r.prosody[a:b, 3] > 0.5
            by[label == ACTED_EMOTIONS.index("surprised")].append(f[a:b][speech].mean(axis=0))
    sad, surprised = np.mean(by[0], axis=0), np.mean(by[1], axis=0)
    for name in ("pitch_level", "pitch_spread", "loud_level", "peaks_per_s"):
        k = FEATURE_NAMES.index(name)
        assert surprised[k] > sad[k], (name, surprised[k], sad[k])


def test_a_small_classifier_separates_two_prosody_styles(two_styles) -> None:
    train, test = two_styles
    x, y = examples(train)
    clf = fit_classifier(x, y, hidden=8, steps=300)
    right = total = 0
    for r in test:
        probs = clf.probabilities(window_features(r.prosody, r.fps))
        for a, b, label in r.lines:
            speech = np.flatnonzero(r.prosody[a:b, 3] > 0.5) + a
            right += int(probs[speech].mean(axis=0).argmax() == label)
            total += 1
    # espeak-ng does not give the same samples twice in one process (docs/SPEECH.md), so
    # the score moves with the tests that ran before; two classes: chance is 0.5.
    assert total >= 24 and right / total >= 0.65, (right, total)  # seen: 0.69-0.88
    clone = EmotionClassifier.from_json(json.loads(json.dumps(clf.to_json())))
    np.testing.assert_allclose(clone.probabilities(x[:50]), clf.probabilities(x[:50]),
                               atol=1e-3)


def test_the_shipped_classifier_is_small_and_matches_the_code() -> None:
    assert WEIGHTS_FILE.stat().st_size < 16_000
    data = json.loads(WEIGHTS_FILE.read_text())
    assert data["classes"] == list(ACTED_EMOTIONS)
    data["features"] = data["features"][:-1]
    with pytest.raises(FacecastError, match="retrain"):
        EmotionClassifier.from_json(data)


def test_the_shipped_classifier_reads_held_out_acted_speech() -> None:
    recs = labelled_recordings(TEST_VOICES, TEST, 8, seed=11)
    clf = load_classifier()
    truth, said = [], []
    for r in recs:
        probs = clf.probabilities(window_features(r.prosody, r.fps))
        for a, b, label in r.lines:
            speech = np.flatnonzero(r.prosody[a:b, 3] > 0.5) + a
            truth.append(label)
            said.append(int(probs[speech].mean(axis=0).argmax()))
    accuracy = np.mean(np.equal(truth, said))
    assert accuracy >= 0.35, accuracy  # chance 1/7; the bench measures ~0.6


def _prosody(n: int, speech: bool) -> np.ndarray:
    rng = np.random.default_rng(1)
    p = np.zeros((n, 4), np.float32)
    if speech:
        p[:, 0] = 1.0 + 0.4 * rng.standard_normal(n)
        p[:, 2] = (np.arange(n) % 7 < 5).astype(np.float32)
        p[:, 1] = np.where(p[:, 2] > 0, 0.3 * rng.standard_normal(n), 0.0)
        p[:, 3] = 0.9
    return p


def test_auto_track_is_valid_and_neutral_without_speech() -> None:
    for n in (0, 1, 5, 300):
        w, i = estimate_emotion_from_prosody(_prosody(n, True), 30.0)
        assert w.shape == (n, len(EMOTIONS)) and i.shape == (n,)
        assert w.dtype == np.float32 and i.dtype == np.float32
        assert np.all(np.isfinite(w)) and np.all((w >= 0) & (w <= 1))
        assert np.all((i >= 0) & (i <= INTENSITY_CAP))
        assert np.all(w[:, EMOTIONS.index("contempt")] == 0)
    w, i = estimate_emotion_from_prosody(_prosody(200, False), 25.0)
    assert np.all(w[:, 0] == 1) and np.all(i == 0)


def test_shown_emotion_reads_a_track() -> None:
    w = np.zeros((10, 8), np.float32)
    w[:, EMOTIONS.index("sad")] = 1.0
    assert ACTED_EMOTIONS[shown_emotion(w, np.full(10, 0.5))] == "sad"
    assert shown_emotion(w, np.full(10, 0.05)) == 0
    w0, i0 = old_prosody_rule(_prosody(100, True), 30.0)
    assert w0.shape == (100, 8) and np.all(i0 <= 0.6)


def test_train_command_and_bench_path(tmp_path, capsys) -> None:
    out = tmp_path / "emo.json"
    assert main(["motion", "train-emotion", "--recordings", "8", "--out", str(out)]) == 0
    clf = EmotionClassifier.from_json(json.loads(out.read_text()))
    assert clf.w1.shape == (len(FEATURE_NAMES), clf.b1.shape[0])
    tables = acted_rows(recordings=2, seed=5)
    text = capsys.readouterr().out
    assert "old hand rule" in text and "chance" in text and "training frame accuracy" in text
    assert set(tables) == {"classifier", "auto", "old rule"}
    assert all(t.sum() == tables["classifier"].sum() > 0 for t in tables.values())
    before = out.read_bytes()
    assert main(["motion", "train-emotion", "--recordings", "2", "--out", str(out)]) != 0
    assert "--recordings 2 is too few" in capsys.readouterr().err
    assert out.read_bytes() == before  # nothing the user had is touched
