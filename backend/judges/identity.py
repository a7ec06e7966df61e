"""An independent judge of identity: dlib's ResNet face descriptor (128-D).

Why this judge: "neutral vs emotion is still the same person" must not be measured with
our own model's features (landmark proportions are what our retargeting pins, so they
would agree by construction). dlib's face recognition network (``dlib-bin`` wheel; its
weights ship in the ``face_recognition_models`` package, public domain) was trained by
its author on about three million photographs of ~7 500 people and scored on LFW, a
standard face-verification test; nothing of ours went into it. Distances between
descriptors of one person are typically below 0.6 (dlib's documented threshold), between
different people above it; the benchmark measures the same-person range on the subject's
own footage, so the verdict does not rest on the published threshold alone.

Faces are found with dlib's HOG detector (or a given box), aligned with its 5-point
shape predictor and described from the aligned 150x150 chip. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from shared.errors import FacecastError

SAME_PERSON_THRESHOLD = 0.6  # dlib's documented operating point on LFW


def _models() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")  # no import: it needs
    if spec is None or not spec.submodule_search_locations:     # pkg_resources
        raise FacecastError("the identity judge needs the face_recognition_models package",
                            "pip install 'facecast[bench]' (dlib-bin, "
                            "face_recognition_models)", code="missing_dependency")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class IdentityJudge:
    """Loads dlib's detector, 5-point aligner and ResNet once."""

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise FacecastError("the identity judge needs dlib", "pip install "
                                "'facecast[bench]' (dlib-bin, face_recognition_models)",
                                code="missing_dependency") from exc
        self._dlib = dlib
        models = _models()
        self._detect = dlib.get_frontal_face_detector()
        self._align = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(
            str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def descriptor(self, image: np.ndarray,
                   box: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
        """uint8 RGB [H, W, 3] -> descriptor [128], or None when no face is found.
        ``box`` (x0, y0, x1, y1) skips detection."""
        img = np.ascontiguousarray(np.asarray(image)[..., :3], dtype=np.uint8)
        if box is None:
            faces = self._detect(img, 1)
            if not faces:
                return None
            rect = max(faces, key=lambda r: r.width() * r.height())
        else:
            rect = self._dlib.rectangle(*(int(v) for v in box))
        shape = self._align(img, rect)
        return np.asarray(self._net.compute_face_descriptor(img, shape), np.float32)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
