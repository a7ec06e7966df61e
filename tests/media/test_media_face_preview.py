"""The numpy face preview follows its landmarks: an open mouth shows the cavity, a closed
lid hides the eye."""

from __future__ import annotations

import numpy as np

from backend.media.face_preview import CAVITY, EYE_WHITE, FacePreview
from shared.landmarks import LOWER_INNER_LIP, UPPER_INNER_LIP, canonical_face


def _count(img: np.ndarray, colour: np.ndarray) -> int:
    return int(np.all(np.abs(img.astype(int) - colour * 255) <= 2, axis=-1).sum())


def test_open_mouth_shows_more_cavity() -> None:
    face = canonical_face()
    preview = FacePreview(128)
    closed = preview.render(face.vertices)
    opened = face.vertices.copy()
    inner = face.groups["lips_inner"]
    mid = (face.vertices[UPPER_INNER_LIP, 1] + face.vertices[LOWER_INNER_LIP, 1]) / 2
    opened[inner[face.vertices[inner, 1] < mid], 1] -= 0.012
    assert _count(preview.render(opened), CAVITY) > _count(closed, CAVITY) + 50


def test_closing_one_eye_removes_its_white() -> None:
    face = canonical_face()
    preview = FacePreview(128)
    shut = face.vertices.copy()
    eye = face.groups["left_eye"]  # subject's left: viewer's right half of the image
    shut[eye, 1] = shut[eye, 1].mean()
    before, after = preview.render(face.vertices), preview.render(shut)
    half = slice(64, 128)
    assert _count(before[:, half], EYE_WHITE) > 10
    assert _count(after[:, half], EYE_WHITE) < _count(before[:, half], EYE_WHITE) / 4
    assert _count(after[:, :64], EYE_WHITE) == _count(before[:, :64], EYE_WHITE)
