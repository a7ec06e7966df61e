"""The ``animate`` job through a real backend process, and the ``facecast animate`` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.motion.performance import animate
from shared.errors import FacecastError
from shared.protocol import BlockingClient, MsgType, load_key
from tests.motion.test_motion_animate import SR, speechlike


def test_animate_job_round_trip(backend, key_file) -> None:
    audio = speechlike(3.0)
    params = {"fps": "30000/1001", "sample_rate": SR, "first_frame": 5,
              "emotion": "0:neutral,20:happy@0.8", "seed": 2, "variation": 0.5}
    with BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=60) as client:
        events = list(client.stream("animate", params, [audio.samples]))
    done = events[-1]
    assert done.kind == MsgType.DONE, done.body
    results = [e for e in events if e.kind == MsgType.RESULT]
    assert any(e.kind == MsgType.PROGRESS for e in events)
    shapes = np.concatenate([e.arrays[0] for e in results])
    landmarks = np.concatenate([e.arrays[5] for e in results])
    local = animate(audio, "30000/1001", "0:neutral,20:happy@0.8", first_frame=5, seed=2,
                    variation=0.5, transcribe=True)  # the job transcribes by default
    assert done.body["n_frames"] == local.n_frames == len(shapes)
    assert done.body["fps"] == "30000/1001" and done.body["first_frame"] == 5
    np.testing.assert_allclose(shapes, local.blendshapes, atol=1e-5)
    np.testing.assert_allclose(landmarks, local.landmarks, atol=1e-6)


def test_animate_job_aligns_dialogue_text(backend, key_file) -> None:
    """The backend advertises the "text" feature and uses the text (or says why not)."""
    from backend.audio import load_audio
    from backend.speech.espeak import synthesize

    clip = synthesize("Peter bought a big blue umbrella in May.", "en-gb-x-rp+f2", 160)
    pcm = load_audio((clip.samples, clip.sample_rate)).samples
    with BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=60) as client:
        assert client.client.supports("animate", "text")
        done = client.call("animate", {"fps": 25, "sample_rate": SR, "text": clip.text},
                           [pcm])
        assert done.body["phones"] == "text" and done.body["warnings"] == []
        assert "transcript" not in done.body  # the text wins over the recogniser
        if client.client.supports("animate", "transcript"):
            done = client.call("animate", {"fps": 25, "sample_rate": SR}, [pcm])
            heard = done.body["transcript"]
            assert "automatic transcript" in heard["report"]  # words, or why none
            assert done.body["phones"] in ("transcript", "acoustic model")
            done = client.call("animate", {"fps": 25, "sample_rate": SR,
                                           "transcribe": False}, [pcm])
            assert "transcript" not in done.body
        done = client.call("animate", {"fps": 25, "sample_rate": SR,
                                       "text": "Seven silly swans sing softly."}, [pcm])
        assert done.body["phones"] == "acoustic model" and "not used" in done.body["warnings"][0]
        with pytest.raises(FacecastError, match="text"):
            client.call("animate", {"fps": 25, "sample_rate": SR, "text": 5}, [pcm])


def test_animate_job_with_arrays_and_bad_input(backend, key_file) -> None:
    audio = speechlike(1.0)
    n = 25
    w = np.zeros((n, 8), np.float32)
    w[:, 2] = 1
    with BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=60) as client:
        done = client.call("animate", {"fps": 25, "sample_rate": SR},
                           [audio.samples, w, np.ones(n, np.float32)])
        assert done.body["n_frames"] == n
        w[0, 0] = np.nan
        with pytest.raises(FacecastError, match="NaN"):
            client.call("animate", {"fps": 25, "sample_rate": SR},
                        [audio.samples, w, np.ones(n, np.float32)])
        with pytest.raises(FacecastError, match="Frame rate"):
            client.call("animate", {"fps": 0, "sample_rate": SR}, [audio.samples])


def test_cli_writes_npz_and_json(tmp_path) -> None:
    import soundfile as sf

    from backend.cli import main

    wav = tmp_path / "line.wav"
    sf.write(wav, speechlike(2.0).samples, SR)
    assert main(["animate", str(wav), "--fps", "24", "--emotion", "0:neutral,20:angry@0.7",
                 "-o", str(tmp_path / "a.npz"), "--seed", "3"]) == 0
    with np.load(tmp_path / "a.npz") as d:
        assert d["blendshapes"].shape == (48, 52) and str(d["fps"]) == "24"
        assert d["landmarks"].shape == (48, 478, 3) and d["head_pose"].shape == (48, 4, 4)
        assert next(iter(d["blendshape_names"])) == "eyeBlinkLeft"
    assert main(["animate", str(wav), "--fps", "24", "-o", str(tmp_path / "a.json"),
                 "--no-blinks", "--head-motion", "0"]) == 0
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["n_frames"] == 48 and len(data["blendshapes"][0]) == 52
    assert main(["animate", str(wav), "--emotion", "0:grumpy", "-o",
                 str(tmp_path / "b.npz")]) == 2
    assert not (tmp_path / "b.npz").exists()
