"""Rendering an animation on a subject keeps the subject's face: landmarks are rebuilt
on its own neutral from the blendshapes."""

from __future__ import annotations

import numpy as np

from backend.motion.face_basis import landmarks_from_blendshapes
from backend.subject.retarget import retarget, subject_neutral
from shared.blendshapes import BLENDSHAPE_INDEX
from shared.landmarks import canonical_face, inter_ocular, mouth_opening


def _manifest(neutral: np.ndarray) -> dict:
    return {"conditioning": {"landmark_mean": neutral.tolist()}}


def test_blendshapes_are_put_on_the_subjects_own_face() -> None:
    canonical = canonical_face().vertices.astype(np.float32)
    wide = canonical * np.array([1.15, 1.0, 1.0], np.float32)  # a broader face
    w = np.zeros((2, 52), np.float32)
    w[1, BLENDSHAPE_INDEX["jawOpen"]] = 0.8
    generic = landmarks_from_blendshapes(w)  # what the motion model sends (canonical face)
    out = retarget({"blendshapes": w, "landmarks": generic}, _manifest(wide))
    lm = out["landmarks"]
    # Identity from the subject: its eye distance, not the canonical one.
    np.testing.assert_allclose(inter_ocular(lm), inter_ocular(wide[None]).repeat(2), rtol=1e-4)
    assert not np.allclose(inter_ocular(lm), inter_ocular(generic))
    # Expression from the animation: the jaw opens on frame 1 only.
    assert mouth_opening(lm)[1] > mouth_opening(lm)[0] + 0.05


def test_landmarks_alone_are_kept_and_missing_neutral_is_harmless() -> None:
    lm = canonical_face().vertices[None].astype(np.float32)
    assert retarget({"landmarks": lm}, _manifest(lm[0] * 1.1))["landmarks"] is lm
    assert subject_neutral({}) is None
    w = np.zeros((1, 52), np.float32)
    assert "landmarks" not in retarget({"blendshapes": w}, {})


def test_the_calm_neutral_is_preferred_over_the_mean_face() -> None:
    """An expressive performer's mean face has an open mouth; retargeting must start from
    the calm-frame neutral when the manifest has one."""
    calm = canonical_face().vertices.astype(np.float32)
    mean = calm + 0.01
    manifest = {"conditioning": {"landmark_mean": mean.tolist(),
                                 "landmark_neutral": calm.tolist()}}
    np.testing.assert_allclose(subject_neutral(manifest), calm, atol=1e-6)
    del manifest["conditioning"]["landmark_neutral"]
    np.testing.assert_allclose(subject_neutral(manifest), mean, atol=1e-6)
