"""Turn a clip into training data: frames, tracking, head poses, conditioning, mattes,
background plate and the held-out split.

One tracker for everything: landmarks come from ``backend.tracking.cache.track_clip``
(the same mediapipe face mesh and canonical topology the motion model is trained on),
so the conditioning a subject learns from is exactly the kind of array the motion model
produces at render time: face-space landmarks [T, 478, 3] in metres (head pose removed).

The split holds out the LAST 10% of the usable frames (a contiguous tail, not random
frames), so evaluation measures new expressions, not neighbours of training frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from shared.errors import InputError

from ..atomic_file import write_atomic
from ..media.decode import probe_video, read_video
from ..nerf.components.geometry import BOX_HI, BOX_LO
from ..nerf.fields.tokens import token_ids
from ..tracking.cache import ClipTracks, track_clip
from ..tracking.head_pose import (
    HeadPoses,
    Intrinsics,
    estimate_intrinsics,
    fit_head_pose,
    smooth_poses,
)
from .background import background_plate
from .matting import person_mattes

log = logging.getLogger(__name__)

MIN_FRAMES = 10  # below this there is nothing to learn a person from
HOLDOUT = 0.10
FOV_DEG = 40.0  # assumed field of view of the source camera (documented in manifest)


@dataclass
class SubjectData:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    mattes: np.ndarray  # uint8 [T, H, W] (alpha * 255)
    plate: np.ndarray  # uint8 [H, W, 3]
    poses: np.ndarray  # float64 [T, 4, 4] head -> camera (Blender axes), smoothed
    k: np.ndarray  # [3, 3]
    landmarks: np.ndarray  # float32 [T, 478, 3] face space, metres
    pixels: np.ndarray  # float32 [T, 478, 2] tracked image positions
    frame_index: np.ndarray  # int64 [T] source frame numbers
    fps: np.ndarray  # int64 [2] numerator, denominator
    n_train: int
    # The torso's frame (the head frame at rest) -> camera, per frame: the mean tracked
    # head pose, refined per training frame by training. None in older caches.
    body_poses: np.ndarray | None = None
    # ARKit weights [T, 52] solved on the subject's calm neutral (set by training).
    blendshapes: np.ndarray | None = None

    @property
    def tokens(self) -> np.ndarray:
        return self.landmarks[:, token_ids()]

    def body(self) -> np.ndarray:
        """``body_poses``, or the mean training head pose for every frame."""
        if self.body_poses is not None:
            return self.body_poses
        from .contract import mean_pose

        return np.broadcast_to(mean_pose(self.poses[: max(1, self.n_train)]),
                               self.poses.shape).copy()

    def save(self, path: Path) -> None:
        arrays = {fl.name: getattr(self, fl.name) for fl in fields(self)
                  if getattr(self, fl.name) is not None}
        write_atomic(path, lambda f: np.savez_compressed(f, **arrays))

    def subset(self, idx: list[int]) -> SubjectData:
        """Only frames ``idx``, all marked held-out (n_train = 0): the small evaluation
        pack a shipped subject carries instead of its full training cache."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw["body_poses"] = self.body()
        for name in ("frames", "mattes", "poses", "landmarks", "pixels", "frame_index",
                     "body_poses", "blendshapes"):
            if kw[name] is not None:
                kw[name] = kw[name][idx]
        kw["n_train"] = 0
        return SubjectData(**kw)

    @classmethod
    def load(cls, path: Path) -> SubjectData:
        with np.load(path, allow_pickle=False) as d:
            kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        kw["n_train"] = int(kw["n_train"])
        return cls(**kw)


@dataclass
class TrackedFace:
    """A clip's tracking as subjects use it: face-space landmarks of the usable frames."""

    tracks: ClipTracks
    fit: HeadPoses
    keep: np.ndarray  # bool [T]: a face was found and its head pose is finite
    intrinsics: Intrinsics

    @property
    def face_landmarks(self) -> np.ndarray:
        """float32 [N, 478, 3] face space (metres, head pose removed), usable frames."""
        return self.fit.face_landmarks[self.keep].astype(np.float32)

    @property
    def n_train(self) -> int:
        n = int(self.keep.sum())
        return max(1, min(n - 1, round(n * (1.0 - HOLDOUT))))


def track_face(clip: str | Path, res: int = 256, max_frames: int | None = None
               ) -> TrackedFace:
    """Track a clip at ``res`` (longer side) and fit head poses, refusing clips with too
    few faces: everything ``prepare`` does before it needs the pixels."""
    clip = Path(clip)
    info = probe_video(clip)  # InputError: missing / unreadable / no video stream
    if info.n_frames and info.n_frames < MIN_FRAMES:
        raise InputError(f"{clip.name} has only {info.n_frames} frames",
                         f"use a clip of at least {MIN_FRAMES} frames (a few seconds of "
                         "the person talking; 1-5 minutes gives the best subject)")
    tracked = track_clip(clip, max_side=res, max_frames=max_frames)
    found = tracked.found
    if found.sum() == 0:
        raise InputError(f"no face found in any of the {len(found)} frames of {clip.name}",
                         "use a video where one face is visible, frontal and well lit")
    if found.mean() < 0.5:
        raise InputError(f"a face is visible in only {found.mean():.0%} of {clip.name}",
                         "trim the clip to the part where the person faces the camera")
    if found.sum() < MIN_FRAMES:
        raise InputError(f"{clip.name} has only {int(found.sum())} frames with a face",
                         f"use a clip with at least {MIN_FRAMES} frames showing the face")
    intr = estimate_intrinsics(*tracked.tracks.image_size, fov_deg=FOV_DEG)
    fit = fit_head_pose(tracked.landmarks, intr)
    keep = found & np.all(np.isfinite(fit.poses.reshape(len(found), -1)), axis=1)
    return TrackedFace(tracked, fit, keep, intr)


def prepare(clip: str | Path, res: int = 256, max_frames: int | None = None
            ) -> SubjectData:
    """Decode + track + matte a clip at ``res`` (longer side) into SubjectData."""
    clip = Path(clip)
    face = track_face(clip, res, max_frames)
    video = read_video(clip, max_frames=max_frames, max_side=res)
    tracked, keep, intr = face.tracks, face.keep, face.intrinsics
    if len(tracked.frame_index) != len(video.frame_index) or not np.array_equal(
            tracked.frame_index, video.frame_index):
        raise InputError(f"tracking and decoding of {clip.name} disagree on frames",
                         "re-encode the clip with a constant frame rate")
    poses = smooth_poses(face.fit.poses[keep])
    frames = video.frames[keep]
    log.info("matting %d frames", len(frames))
    mattes = person_mattes(frames)
    plate = background_plate(frames, mattes)
    return SubjectData(frames, (mattes * 255).round().astype(np.uint8), plate, poses,
                       intr.matrix(), face.face_landmarks,
                       tracked.landmarks[keep, :, :2].astype(np.float32),
                       video.frame_index[keep],
                       np.array([video.fps.numerator, video.fps.denominator]), face.n_train)


def nearest_training_frames(data: SubjectData, frames: list[int]) -> np.ndarray:
    """Indices of the training frames whose tracked 2-D landmarks are nearest to each
    of ``frames`` (pose and expression in image terms)."""
    train = data.pixels[: data.n_train].reshape(data.n_train, -1)
    out = []
    for f in frames:
        d = np.sum((train - data.pixels[f].reshape(1, -1)) ** 2, axis=1)
        out.append(int(np.argmin(d)))
    return np.asarray(out)


def box_rects(data: SubjectData) -> np.ndarray:
    """Per frame, the image rectangle [x0, y0, x1, y1] the head box projects into."""
    corners = np.array([[x, y, z] for x in (BOX_LO[0], BOX_HI[0])
                        for y in (BOX_LO[1], BOX_HI[1]) for z in (BOX_LO[2], BOX_HI[2])])
    cam = np.einsum("tij,nj->tni", data.poses[:, :3, :3], corners) + data.poses[:, None, :3, 3]
    z = np.maximum(-cam[..., 2], 1e-3)
    x = data.k[0, 2] + data.k[0, 0] * cam[..., 0] / z
    y = data.k[1, 2] - data.k[1, 1] * cam[..., 1] / z
    h, w = data.frames.shape[1:3]
    return np.stack([np.clip(x.min(1), 0, w - 1), np.clip(y.min(1), 0, h - 1),
                     np.clip(x.max(1), 1, w), np.clip(y.max(1), 1, h)], axis=1)


def face_rects(data: SubjectData, margin: float = 0.1) -> np.ndarray:
    """Per frame, the tracked face's bounding rectangle (+margin): the 'face box'."""
    p = data.pixels
    lo, hi = p.min(axis=1), p.max(axis=1)
    pad = (hi - lo) * margin
    h, w = data.frames.shape[1:3]
    lo = np.clip(lo - pad, 0, [w - 1, h - 1])
    hi = np.clip(hi + pad, 1, [w, h])
    return np.concatenate([lo, hi], axis=1)


def feature_rects(data: SubjectData) -> np.ndarray:
    """Per frame, a rectangle around mouth and eyes: where conditioning matters most."""
    from shared.landmarks import canonical_face

    cf = canonical_face()
    ids = np.concatenate([cf.group("lips_outer"), cf.group("left_eye"), cf.group("right_eye"),
                          cf.group("left_brow"), cf.group("right_brow")])
    p = data.pixels[:, ids]
    lo, hi = p.min(axis=1) - 3, p.max(axis=1) + 3
    h, w = data.frames.shape[1:3]
    return np.concatenate([np.clip(lo, 0, [w - 1, h - 1]), np.clip(hi, 1, [w, h])], axis=1)
