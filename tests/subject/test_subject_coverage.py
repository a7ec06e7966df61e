"""Expression coverage of footage: synthetic faces whose answers are known, a real clip
through ``facecast subject coverage``, and the shipped subject's ``subject info``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.cli import main
from backend.motion.face_basis import landmarks_from_blendshapes
from backend.subject.coverage import Coverage, footage_coverage
from shared.blendshapes import BLENDSHAPE_INDEX
from shared.landmarks import canonical_face
from tests.conftest import data_path


def _footage(*moves: tuple[dict[str, float], int], calm: int = 60) -> np.ndarray:
    """Face-space landmarks: ``calm`` neutral frames, then each (channels, frames) move,
    with 0.2 mm of tracking jitter."""
    rows = [np.zeros(52, np.float32)] * calm
    for channels, n in moves:
        w = np.zeros(52, np.float32)
        for name, v in channels.items():
            w[BLENDSHAPE_INDEX[name]] = v
        rows += [w] * n
    lm = landmarks_from_blendshapes(np.stack(rows), canonical_face().vertices)
    return lm + np.random.default_rng(0).normal(0, 2e-4, lm.shape).astype(np.float32)


SMILE = {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9, "cheekSquintLeft": 0.5,
         "cheekSquintRight": 0.5, "eyeSquintLeft": 0.3, "eyeSquintRight": 0.3}  # AU6+AU12
TALK = {"jawOpen": 0.5, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3}


def test_smiles_cover_happy_and_no_frown_leaves_angry_uncovered() -> None:
    cov = footage_coverage(_footage((SMILE, 30), (TALK, 30)), fps=30.0)
    assert cov.emotions["happy"].level == "covered"
    angry = cov.emotions["angry"]
    assert angry.level == "not covered" and "lower" in angry.limiting
    assert "film more" in "\n".join(cov.lines()) and "happy" in cov.summary()
    assert Coverage.from_dict(json.loads(json.dumps(cov.to_dict()))).summary() == cov.summary()


def test_talking_alone_is_not_a_smile_or_a_frown() -> None:
    cov = footage_coverage(_footage((TALK, 60)), fps=30.0)
    assert cov.reach["jaw open"] > 0.1
    for e in ("happy", "sad", "angry", "contempt"):
        assert cov.emotions[e].level == "not covered", (e, cov.emotions[e])


def test_frowns_and_brows_cover_angry_and_sad() -> None:
    cov = footage_coverage(_footage(({"browDownLeft": 0.9, "browDownRight": 0.9}, 20),
                                    ({"browInnerUp": 0.9, "mouthFrownLeft": 0.8,
                                      "mouthFrownRight": 0.8}, 20)), fps=30.0)
    assert cov.emotions["angry"].level == "covered"
    assert cov.emotions["sad"].level == "covered"
    assert cov.emotions["happy"].level == "not covered"


def test_a_real_clip_through_the_cli(capsys: pytest.CaptureFixture) -> None:
    """d9 (a man, mostly calm, smiling now and then) covers happy, never opens his jaw
    wide: surprised is not covered."""
    clip = data_path("clips", "d9.mp4")
    assert main(["subject", "coverage", str(clip), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["emotions"]["happy"]["level"] == "covered"
    assert d["emotions"]["surprised"]["level"] == "not covered"
    assert d["emotions"]["surprised"]["limiting"] == "jaw open"


def test_subject_info_prints_the_coverage(capsys: pytest.CaptureFixture) -> None:
    assert main(["subject", "info", "default"]) == 0
    out = capsys.readouterr().out
    assert "expression coverage of the footage (907 training frames" in out
    assert "happy      partly" in out and "film more lip-corner lift" in out


def test_bad_landmarks_are_one_clear_error() -> None:
    from shared.errors import InputError

    with pytest.raises(InputError, match=r"\[T, 478, 3\]"):
        footage_coverage(np.zeros((5, 468, 3)), fps=25.0)


def test_subject_info_measures_older_subjects_on_their_kept_frames(tmp_path, capsys) -> None:
    """A subject built before coverage existed: measured on the training frames it keeps."""
    import shutil

    from backend.subject.store import BUILTIN_SUBJECTS

    src = BUILTIN_SUBJECTS["default"]
    m = json.loads((src / "manifest.json").read_text())
    del m["coverage"]
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    shutil.copy(src / "training.npz", tmp_path / "training.npz")
    assert main(["subject", "info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "measured now on training.npz (12 frames)" in out
    assert "(12 training frames" in out and "happy " in out
