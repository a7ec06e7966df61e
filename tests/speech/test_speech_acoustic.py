"""The phone front-end: pocketsphinx's acoustic model scored our own way.

The cepstra must be the ones the model was trained on: they are checked against
pocketsphinx's own front-end (its C ``fe_process_utt``, reached through ctypes because
the Python API never returns cepstra). The phone scores are judged by espeak-ng's exact
phone times: frames where espeak says p/b/m must score bilabial higher than the rest.
"""

from __future__ import annotations

import ctypes
import glob
import json
from pathlib import Path

import numpy as np
import pytest

from backend.motion.phones import acoustic_class_probs, acoustic_evidence
from backend.speech import mfcc
from backend.speech.acoustic import acoustic_model, phone_scores
from backend.speech.espeak import synthesize
from backend.speech.viseme_classes import CLASSES, viseme_class
from tests.conftest import data_path


def _pocketsphinx_cepstra(pcm: np.ndarray) -> np.ndarray:
    """pocketsphinx's own MFCC of int16 ``pcm`` (noise removal off: we leave it out)."""
    import pocketsphinx

    lib = ctypes.CDLL(glob.glob(str(Path(pocketsphinx.__file__).parent /
                                    "_pocketsphinx*.so"))[0])
    lib.ps_config_parse_json.restype = ctypes.c_void_p
    lib.ps_config_parse_json.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.fe_init_auto_r.restype = ctypes.c_void_p
    lib.fe_init_auto_r.argtypes = [ctypes.c_void_p]
    # the model's feat.params
    cfg = lib.ps_config_parse_json(None, json.dumps({
        "lowerf": 130, "upperf": 6800, "nfilt": 25, "transform": "dct", "lifter": 22,
        "remove_noise": False}).encode())
    fe = ctypes.c_void_p(lib.fe_init_auto_r(ctypes.c_void_p(cfg)))
    cep = ctypes.POINTER(ctypes.POINTER(ctypes.c_float))()
    n = ctypes.c_int32()
    lib.fe_start_utt(fe)
    assert lib.fe_process_utt(fe, pcm.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(len(pcm)),
                              ctypes.byref(cep), ctypes.byref(n)) == 0
    return np.ctypeslib.as_array(cep[0], shape=(n.value * 13,)).reshape(n.value, 13).copy()


def test_cepstra_equal_pocketsphinx_front_end() -> None:
    import soundfile as sf

    pcm, rate = sf.read(data_path("speech", "eng.wav"), dtype="int16")
    pcm = np.ascontiguousarray(pcm[: 3 * rate])
    ours = mfcc.cepstra(pcm.astype(np.float32) / 32768.0)
    # Our frame i is centred on sample 160 i; pocketsphinx's frame i starts at 160 i: give
    # it the half window of silence in front that ours sees.
    theirs = _pocketsphinx_cepstra(np.concatenate([np.zeros(mfcc.FRAME // 2, np.int16), pcm]))
    n = min(len(ours), len(theirs))
    assert n >= len(ours) - 3
    np.testing.assert_allclose(ours[:n], theirs[:n], atol=2e-3, rtol=1e-4)


def test_phone_scores_find_bilabials_at_espeak_times() -> None:
    text = "Bob made a map of the bay, and mama bought pop by the pool."
    clip = synthesize(text, "en-us", 150)
    from backend.audio.loading import resample

    x = resample(clip.samples, clip.sample_rate, 16000).astype(np.float32)
    classes = acoustic_class_probs(x)
    assert classes.shape == (mfcc.n_frames_for(len(x)), len(CLASSES))
    np.testing.assert_allclose(classes.sum(axis=1), 1.0, atol=1e-4)
    times = np.arange(len(classes)) / 100
    spans = [(e.time, clip.phonemes[i + 1].time) for i, e in enumerate(clip.phonemes[:-1])
             if viseme_class(e.phoneme) == "bilabial"]
    inside = np.zeros(len(times), bool)
    for a, b in spans:
        inside |= (times >= a) & (times < b)
    speech = (times > clip.phonemes[0].time) & (times < clip.duration - 0.1)
    col = CLASSES.index("bilabial")
    pos, neg = classes[inside, col], classes[speech & ~inside, col]
    auc = float((pos[:, None] > neg[None, :]).mean())
    assert len(spans) >= 12 and auc > 0.75, auc


def test_silence_is_rest_and_empty_audio_is_fine() -> None:
    from backend.audio.loading import resample

    clip = synthesize("Hello there, how are you?", "en-us", 160)
    x = resample(clip.samples, clip.sample_rate, 16000).astype(np.float32)
    gap = np.zeros(16000, np.float32)
    classes = acoustic_class_probs(np.concatenate([gap, x, gap]))
    assert CLASSES[0] == "rest"
    assert (classes[10:90].argmax(axis=1) == 0).mean() > 0.9  # the leading second
    assert classes[10:90, 0].mean() > 0.8
    ev = acoustic_evidence(np.concatenate([gap, x, gap]))
    assert ev.source == "acoustic model" and not ev.must[10:90].any()
    assert np.isfinite(ev.visemes).all() and ev.visemes.shape[1] == 27
    assert phone_scores(np.zeros(0, np.float32)).loglik.shape == (0, len(acoustic_model().names))
    short = phone_scores(np.zeros(100, np.float32))  # one frame
    assert short.loglik.shape[0] == 1 and np.isfinite(short.loglik).all()


@pytest.mark.parametrize("seconds", [0.31, 2.0])
def test_scores_cover_every_hop(seconds: float) -> None:
    x = np.random.default_rng(0).normal(0, 0.05, int(seconds * 16000)).astype(np.float32)
    got = phone_scores(x)
    assert got.loglik.shape == (mfcc.n_frames_for(len(x)), 42)
    assert np.isfinite(got.loglik).all()
    p = got.posteriors()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
