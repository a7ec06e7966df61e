"""What a render needs: the conditioning contract shared by the CLI, the render job, the
add-on's request and the demo (pure numpy, vendored into the add-on).

A render of a subject takes, per frame:

* **Expression** on the 478-point mediapipe face mesh topology (``TOPOLOGY``):
  ``blendshapes[T, 52]`` (ARKit order, ``shared.blendshapes``) and/or
  ``landmarks[T, 478, 3]`` (face space: metres, canonical head frame, pose removed).
  Blendshapes are the portable form: the backend rebuilds landmarks from them on the
  SUBJECT's own neutral face (``backend.subject.conditioning``), so identity comes from
  the capture and only the expression from the animation. Landmarks sent alone must be
  the subject's own face (e.g. tracked from its footage); another person's landmarks
  are refused because they would render another face shape.
* **Head pose** ``head_pose[T, 4, 4]`` (or one ``[4, 4]``), always with its frame named
  (``head_pose_frame``; a head pose without a named frame is refused, never guessed):

  - ``"world"`` (``HEAD_POSE_WORLD``): maps the canonical head frame (+X the subject's
    left, +Y up, +Z out of the face; ``shared.landmarks``) to the Blender world (metres,
    Z up). The add-on sends this: the face object's ``matrix_world @ HEAD_TO_BLENDER``.
  - ``"motion"`` (``HEAD_POSE_MOTION``): head motion relative to the rest pose,
    expressed in canonical head-frame axes (identity = at rest). ``facecast animate``
    writes this (``anim.npz`` records ``head_pose_frame = "motion"``). It is placed in
    the world by ``placement`` (the rest head frame -> world; default
    ``HEAD_TO_BLENDER``: the head at the origin looking down Blender's -Y, i.e. into
    the Front view): world pose = ``placement @ motion``.
* **Body** (the torso/neck anchor; the torso does not turn with the head): for
  ``"motion"`` it is ``placement``; for ``"world"`` an explicit ``body_pose`` ([4, 4] or
  [T, 4, 4], torso frame -> world, the torso frame being the head frame at rest) or, by
  default, the mean of the sequence's head poses.

No head pose at all: the head rests at ``placement`` (default ``HEAD_TO_BLENDER``).
"""

from __future__ import annotations

import numpy as np

from shared.errors import InputError
from shared.landmarks import HEAD_TO_BLENDER, N_LANDMARKS

HEAD_POSE_WORLD = "world"
HEAD_POSE_MOTION = "motion"
HEAD_POSE_FRAMES = (HEAD_POSE_WORLD, HEAD_POSE_MOTION)
#: The landmark topology every subject is conditioned on.
TOPOLOGY = f"mediapipe-face-mesh-{N_LANDMARKS}"
#: The ``anim.npz`` / job-param key that names the head pose's frame.
HEAD_POSE_FRAME_KEY = "head_pose_frame"

_FRAME_FIX = (f"name it: {HEAD_POSE_FRAME_KEY}='{HEAD_POSE_WORLD}' (canonical head frame -> "
              f"Blender world, what the add-on sends) or '{HEAD_POSE_MOTION}' (motion "
              "relative to the rest pose, what `facecast animate` writes)")


def check_head_pose_frame(frame: object, has_head_pose: bool) -> str | None:
    """The declared frame of a head pose; InputError when a head pose comes without one
    or with an unknown one. None when there is no head pose."""
    if frame is None or (isinstance(frame, str) and not frame):
        if has_head_pose:
            raise InputError("the head pose does not say which frame it is in", _FRAME_FIX)
        return None
    name = str(frame).strip().lower()
    if name not in HEAD_POSE_FRAMES:
        raise InputError(f"unknown head pose frame {frame!r}", _FRAME_FIX)
    return name


def _poses(value: np.ndarray, n: int, what: str) -> np.ndarray:
    m = np.asarray(value, dtype=np.float64)
    if m.shape == (4, 4):
        m = np.broadcast_to(m, (n, 4, 4))
    if m.shape != (n, 4, 4):
        raise InputError(f"{what} must be [4, 4] or [{n}, 4, 4], got {m.shape}",
                         f"pass one 4x4 matrix, or one per frame ({n})")
    if not np.all(np.isfinite(m)):
        raise InputError(f"{what} contains NaN or infinite values",
                         f"fix or drop those frames of {what}")
    if not np.allclose(m[:, 3], [0, 0, 0, 1], atol=1e-5):
        raise InputError(f"{what} is not an affine transform (last row is not 0 0 0 1)",
                         "pass 4x4 rigid transforms, row-major (numpy / Blender order)")
    return np.array(m)


def mean_pose(poses: np.ndarray) -> np.ndarray:
    """The mean of rigid transforms ``[T, 4, 4]``: the rotation nearest the summed
    rotations (chordal L2 mean) and the mean translation."""
    p = np.asarray(poses, dtype=np.float64)
    u, _, vt = np.linalg.svd(p[:, :3, :3].sum(0))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    out = np.eye(4)
    out[:3, :3] = u @ d @ vt
    out[:3, 3] = p[:, :3, 3].mean(0)
    return out


def head_and_body_poses(n: int, head_pose: np.ndarray | None, frame: str | None,
                        placement: np.ndarray | None = None,
                        body_pose: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """World poses of the head and the body for ``n`` frames: (head [n, 4, 4] canonical
    head frame -> Blender world, body [n, 4, 4] torso frame -> world). See the module
    docstring for the frames."""
    place = _poses(HEAD_TO_BLENDER if placement is None else placement, n, "placement")
    if head_pose is None:
        head = place.copy()
        body = place.copy() if body_pose is None else _poses(body_pose, n, "body_pose")
        return head, body
    frame = check_head_pose_frame(frame, True)
    pose = _poses(head_pose, n, "head_pose")
    if frame == HEAD_POSE_MOTION:
        if body_pose is not None:
            raise InputError("body_pose was given with a head motion",
                             "with head_pose_frame='motion' the body sits at placement; "
                             "pass placement instead")
        return place @ pose, place.copy()
    if placement is not None:
        raise InputError("placement was given with world head poses",
                         "world head poses are placed already: drop placement, or send "
                         "head_pose_frame='motion'")
    if body_pose is None:
        body = np.broadcast_to(mean_pose(pose), (n, 4, 4)).copy()
    else:
        body = _poses(body_pose, n, "body_pose")
    return pose, body


def check_topology(landmarks: np.ndarray) -> None:
    """Refuse landmarks of another topology, naming it (468 = no irises, 68 = dlib...)."""
    a = np.asarray(landmarks)
    if a.ndim == 3 and a.shape[2] in (2, 3) and a.shape[1] != N_LANDMARKS:
        hint = {468: "the face mesh without irises (refine_landmarks off)",
                68: "dlib / iBUG 68-point landmarks",
                106: "a 106-point (InsightFace) layout"}.get(a.shape[1], "another layout")
        raise InputError(f"the animation's landmarks have {a.shape[1]} points ({hint}); "
                         f"subjects use {TOPOLOGY} ({N_LANDMARKS} points with irises)",
                         "send ARKit blendshapes instead (any rig's animation works), or "
                         "track the face with Facecast's tracker (refine_landmarks on)")
