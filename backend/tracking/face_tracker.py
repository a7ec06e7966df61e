"""Face tracking with mediapipe's face mesh: 478 landmarks per frame, offline, on CPU.

Why this tracker: ``mediapipe==0.10.21`` is the last wheel whose legacy
``solutions.face_mesh`` graph ships its models *inside* the wheel (face detector +
face-landmark-with-attention tflite), so tracking works offline on any machine. Later
wheels (0.10.30+, 1.x) only have the Tasks API, whose FaceLandmarker needs a separately
downloaded ``.task`` file, which Facecast may not fetch at run time. The price: the legacy
graph gives no blendshape scores, so ``Tracks.blendshapes`` is None (our own motion model
maps landmarks to ARKit-52).

Video mode (``static=False``) re-uses the previous frame's face box instead of running the
detector every frame: faster and temporally steadier. When it loses the face (fast motion,
sparse sampling) the frame is re-run through a fresh detection, so a frame is only
reported faceless when detection fails too. ``static=True`` detects on every frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from shared.errors import FacecastError, InputError
from shared.landmarks import N_LANDMARKS

from .quiet import quiet_native_logs

PROGRESS_MIN_FRAMES = 300  # show a progress bar only when tracking takes a while


def _mediapipe():
    """Import mediapipe quietly (its C++ logs flood the console otherwise)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import mediapipe as mp
        from mediapipe.python.solutions import face_mesh
    except ImportError as exc:
        raise FacecastError("face tracking needs mediapipe 0.10.21, which is not installed",
                            "pip install 'facecast[tracking]' (or mediapipe==0.10.21)",
                            code="missing_dependency") from exc
    return mp, face_mesh


def tracker_version() -> str:
    """Identifies tracker + settings; part of every cache key so upgrades re-track."""
    mp, _ = _mediapipe()
    return f"mediapipe-{mp.__version__}-facemesh-refined-v2"


@dataclass
class Tracks:
    """Per-frame face landmarks of one frame sequence.

    ``landmarks[t, i] = (x, y, z)``: x, y in image pixels (origin top-left, y down); z is
    mediapipe's relative depth converted to the same pixel units (normalised z times the
    image width, as mediapipe defines it): negative = nearer the camera, roughly zero at
    the face's centre. Rows of frames without a face are NaN and ``found`` is False there.
    """

    landmarks: np.ndarray  # float32 [T, 478, 3]
    found: np.ndarray  # bool [T]
    image_size: tuple[int, int]  # (width, height) of the tracked frames
    blendshapes: np.ndarray | None = None  # [T, 52] if the tracker offers them; never here

    def __len__(self) -> int:
        return int(self.found.shape[0])

    @property
    def found_fraction(self) -> float:
        return float(self.found.mean()) if len(self) else 0.0


def _check_frame(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", type(frame).__name__)
        raise InputError(f"a frame must be an RGB image shaped [H, W, 3], got {shape}",
                         "decode frames with backend.media.decode.read_video (RGB, uint8)")
    if frame.dtype != np.uint8:
        raise InputError(f"frames must be uint8, got {frame.dtype}",
                         "convert with (frame * 255).clip(0, 255).astype(np.uint8)")
    if size is not None and (frame.shape[1], frame.shape[0]) != size:
        raise InputError(f"frame size changed mid-sequence: {frame.shape[1]}x{frame.shape[0]}"
                         f" after {size[0]}x{size[1]}", "resize all frames to one size")
    return np.ascontiguousarray(frame)


def track_faces(frames: Iterable[np.ndarray], *, static: bool = False,
                min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                total: int | None = None, progress: bool | None = None) -> Tracks:
    """Track one face through ``frames`` (uint8 RGB ``[H, W, 3]`` each, or ``[T, H, W, 3]``).

    ``total`` is the frame count for the progress bar when ``frames`` is a generator;
    ``progress=None`` shows one only for sequences of ``PROGRESS_MIN_FRAMES`` or more.
    """
    _, face_mesh = _mediapipe()
    if total is None and hasattr(frames, "__len__"):
        total = len(frames)  # type: ignore[arg-type]
    if progress is None:
        progress = total is not None and total >= PROGRESS_MIN_FRAMES
    with quiet_native_logs():
        return _track(frames, face_mesh, static, min_detection_confidence,
                      min_tracking_confidence, total, progress)


def _track(frames: Iterable[np.ndarray], face_mesh, static: bool,
           min_detection_confidence: float, min_tracking_confidence: float,
           total: int | None, progress: bool) -> Tracks:
    bar = None
    if progress:
        from backend.progress import progress as progress_bar

        bar = progress_bar(total, "tracking faces", "frame")
    rows: list[np.ndarray] = []
    found: list[bool] = []
    size: tuple[int, int] | None = None
    options = {"max_num_faces": 1, "refine_landmarks": True,
               "min_detection_confidence": min_detection_confidence,
               "min_tracking_confidence": min_tracking_confidence}
    detector = None  # a per-frame detector, created on the first miss only
    with face_mesh.FaceMesh(static_image_mode=static, **options) as mesh:
        try:
            for frame in frames:
                if bar is not None:
                    bar.update(1)
                frame = _check_frame(frame, size)
                size = (frame.shape[1], frame.shape[0])
                faces = mesh.process(frame).multi_face_landmarks
                if not faces and not static:
                    # Video mode drops a frame when the face moved too far for the previous
                    # frame's box (fast motion, sparse sampling); detect afresh before
                    # calling the face lost.
                    if detector is None:
                        detector = face_mesh.FaceMesh(static_image_mode=True, **options)
                    faces = detector.process(frame).multi_face_landmarks
                if not faces:
                    rows.append(np.full((N_LANDMARKS, 3), np.nan, np.float32))
                    found.append(False)
                    continue
                pts = np.array([(p.x, p.y, p.z) for p in faces[0].landmark], np.float32)
                pts *= np.array([size[0], size[1], size[0]], dtype=np.float32)
                rows.append(pts)
                found.append(True)
        finally:
            if detector is not None:
                detector.close()
            if bar is not None:
                bar.close()
    if not rows:
        raise InputError("no frames to track", "pass at least one decoded video frame")
    return Tracks(np.stack(rows), np.asarray(found, dtype=bool), size or (0, 0))


def require_faces(tracks: Tracks, min_fraction: float = 0.9, what: str = "the clip") -> None:
    """Raise a clear InputError when too few frames show a face to learn from them."""
    missing = int((~tracks.found).sum())
    if len(tracks) == 0 or tracks.found_fraction < min_fraction:
        raise InputError(
            f"no face found in {missing} of {len(tracks)} frames of {what}",
            f"use footage where one face is visible, frontal and well lit in at least "
            f"{min_fraction:.0%} of the frames (trim the parts without it)")
