"""Blend a bone rig's poses by per-frame weights, minus Blender.

Each pose (one pose action of the animator's pose library) holds, per bone, the
transform channels it keys. For every frame ``t`` and pose ``p`` with weight
``w[t, p]``, each bone channel becomes ``rest + sum_p w * (pose_p - rest)``, done in the
space where that sum means something:

* **location** — plain sums of offsets from the rest (0, 0, 0);
* **rotation** — each pose's rotation as a quaternion, its offset from the rest
  (identity) as a rotation vector (log map); the weighted rotation vectors are summed
  and mapped back (exp map). Summing Euler angles or quaternion components would
  distort as soon as two poses turn the same bone about different axes; rotation
  vectors add like small rotations and reproduce each pose exactly at weight 1.
  Whatever the pose keyed (quaternion, any Euler order, axis-angle), the result is
  written in the bone's own rotation mode; Euler curves are kept continuous;
* **scale** — multiplicative: ``exp(sum w * log(scale_p))``, so two poses that halve a
  bone do not reach zero (linear if a pose keys a scale <= 0);
* **other properties** (custom properties, B-Bone settings) — linear from their rest.

Channels no pose touches are not written at all: the generated action only moves what
the pose library moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
QUATERNION, AXIS_ANGLE = "QUATERNION", "AXIS_ANGLE"
ROTATION_MODES = (QUATERNION, AXIS_ANGLE, *EULER_ORDERS)

# A written channel: (bone, property, index) for bone transforms, ("", data_path, index)
# for any other animated property.
Channel = tuple[str, str, int]


@dataclass
class BonePose:
    """One pose's keyed channels of one bone; NaN = not keyed by this pose."""

    location: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    rotation: np.ndarray | None = None  # quaternion (w, x, y, z), None = not keyed
    scale: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))


@dataclass
class Pose:
    """A pose action reduced to numbers: its bones and its other animated properties."""

    name: str
    bones: dict[str, BonePose] = field(default_factory=dict)
    properties: dict[tuple[str, int], float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# Quaternions (w, x, y, z), vectorised over leading axes


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_normalize(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(n > 1e-12, q / np.maximum(n, 1e-12), np.array([1.0, 0.0, 0.0, 0.0]))


def quat_log(q: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, radians) of unit quaternions, shortest way round."""
    q = quat_normalize(q)
    q = np.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    scale = np.where(s > 1e-12, angle / np.maximum(s, 1e-12), 2.0)
    return v * scale


def quat_exp(r: np.ndarray) -> np.ndarray:
    """Unit quaternion of a rotation vector (inverse of :func:`quat_log`)."""
    r = np.asarray(r, np.float64)
    angle = np.linalg.norm(r, axis=-1, keepdims=True)
    half = 0.5 * angle
    k = np.where(angle > 1e-12, np.sin(half) / np.maximum(angle, 1e-12), 0.5)
    return np.concatenate([np.cos(half), r * k], axis=-1)


def _axis_quat(axis: int, angle: np.ndarray) -> np.ndarray:
    angle = np.asarray(angle, np.float64)
    q = np.zeros((*angle.shape, 4))
    q[..., 0] = np.cos(0.5 * angle)
    q[..., 1 + axis] = np.sin(0.5 * angle)
    return q


def quat_from_euler(euler: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """Blender Euler angles (``order`` = the order the axes apply, first to last)."""
    euler = np.asarray(euler, np.float64)
    q = None
    for letter in order:  # first axis applied = rightmost factor
        axis = "XYZ".index(letter)
        step = _axis_quat(axis, euler[..., axis])
        q = step if q is None else quat_mul(step, q)
    return q  # type: ignore[return-value]


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.moveaxis(quat_normalize(q), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=-2)


def quat_to_euler(q: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """Blender Euler angles for quaternions ``[..., 4]``; along axis 0 the angles are
    kept continuous (no jumps of 2*pi from one frame to the next)."""
    m = quat_to_matrix(q)
    i, j, k = ("XYZ".index(c) for c in order)
    perm = np.zeros((3, 3))
    perm[0, i] = perm[1, j] = perm[2, k] = 1.0
    sign = float(np.linalg.det(perm))  # an odd relabelling mirrors, so angles flip sign
    r = perm @ m @ perm.T  # now R = Rz(c) Ry(b) Rx(a) in the relabelled axes
    a = np.arctan2(r[..., 2, 1], r[..., 2, 2])
    b = np.arctan2(-r[..., 2, 0], np.hypot(r[..., 0, 0], r[..., 1, 0]))
    c = np.arctan2(r[..., 1, 0], r[..., 0, 0])
    angles = sign * np.stack([a, b, c], axis=-1)
    out = np.empty_like(angles)
    out[..., [i, j, k]] = angles  # back to X, Y, Z slots
    if out.ndim == 2 and len(out) > 1:  # continuity along frames
        steps = np.diff(out, axis=0)
        out[1:] -= np.cumsum(2 * np.pi * np.round(steps / (2 * np.pi)), axis=0)
    return out


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """``[angle, x, y, z]`` as Blender's axis-angle rotation stores it (axis Y at rest)."""
    r = quat_log(q)
    angle = np.linalg.norm(r, axis=-1, keepdims=True)
    axis = np.where(angle > 1e-9, r / np.maximum(angle, 1e-9), np.array([0.0, 1.0, 0.0]))
    return np.concatenate([angle, axis], axis=-1)


def rotation_to_quat(kind: str, values: np.ndarray, euler_order: str = "XYZ") -> np.ndarray:
    """A keyed rotation (``quaternion`` / ``euler`` / ``axis_angle`` components, NaN =
    not keyed, which reads as the rest value) as a unit quaternion."""
    v = np.asarray(values, np.float64)
    if kind == "quaternion":
        return quat_normalize(np.where(np.isnan(v), [1.0, 0.0, 0.0, 0.0], v))
    if kind == "euler":
        return quat_from_euler(np.nan_to_num(v), euler_order)
    if kind == "axis_angle":
        v = np.where(np.isnan(v), [0.0, 0.0, 1.0, 0.0], v)
        axis = v[1:] / max(float(np.linalg.norm(v[1:])), 1e-12)
        return quat_exp(axis * v[0])
    raise ValueError(f"unknown rotation kind {kind!r}")


# --------------------------------------------------------------------------------------
# Blending


def blend_poses(poses: Sequence[Pose], weights: np.ndarray, rotation_modes: Mapping[str, str],
                property_rest: Mapping[tuple[str, int], float] | None = None
                ) -> dict[Channel, np.ndarray]:
    """Per-frame values of every channel the poses touch.

    ``weights`` is ``[T, P]`` (column p drives ``poses[p]``); ``rotation_modes`` maps each
    bone to its rotation mode (the channel written); ``property_rest`` gives the rest
    value of other animated properties (default 0). Returns ``{(bone, property, index):
    values[T]}`` with property ``location`` / ``rotation_quaternion`` /
    ``rotation_euler`` / ``rotation_axis_angle`` / ``scale``, and ``("", data_path,
    index)`` for other properties.
    """
    w = np.asarray(weights, np.float64)
    if w.ndim != 2 or w.shape[1] != len(poses):
        raise ValueError(f"weights {w.shape} do not match {len(poses)} poses")
    t = len(w)
    out: dict[Channel, np.ndarray] = {}
    bones = sorted({b for p in poses for b in p.bones})
    for bone in bones:
        loc = np.zeros((t, 3))
        rot = np.zeros((t, 3))
        log_scale = np.zeros((t, 3))
        lin_scale = np.zeros((t, 3))
        loc_used, scale_used, rotated, nonpositive = (np.zeros(3, bool), np.zeros(3, bool),
                                                      False, np.zeros(3, bool))
        for p, pose in enumerate(poses):
            bp = pose.bones.get(bone)
            if bp is None:
                continue
            col = w[:, p:p + 1]
            keyed = ~np.isnan(bp.location)
            loc += col * np.where(keyed, bp.location, 0.0)
            loc_used |= keyed
            if bp.rotation is not None:
                rot += col * quat_log(bp.rotation)
                rotated = True
            keyed = ~np.isnan(bp.scale)
            s = np.where(keyed, bp.scale, 1.0)
            nonpositive |= s <= 0
            log_scale += col * np.log(np.where(s > 0, s, 1.0))
            lin_scale += col * (s - 1.0)
            scale_used |= keyed
        for axis in np.flatnonzero(loc_used):
            out[(bone, "location", int(axis))] = loc[:, axis]
        for axis in np.flatnonzero(scale_used):
            out[(bone, "scale", int(axis))] = (1.0 + lin_scale[:, axis]) if nonpositive[axis] \
                else np.exp(log_scale[:, axis])
        if rotated:
            mode = rotation_modes.get(bone, QUATERNION)
            q = quat_exp(rot)
            if mode == QUATERNION:
                values, prop = q, "rotation_quaternion"
            elif mode == AXIS_ANGLE:
                values, prop = quat_to_axis_angle(q), "rotation_axis_angle"
            elif mode in EULER_ORDERS:
                values, prop = quat_to_euler(q, mode), "rotation_euler"
            else:
                raise ValueError(f"bone {bone!r} has unknown rotation mode {mode!r}")
            for axis in range(values.shape[1]):
                out[(bone, prop, axis)] = values[:, axis]
    rest = property_rest or {}
    keys = sorted({k for p in poses for k in p.properties})
    for key in keys:
        base = float(rest.get(key, 0.0))
        values = np.full(t, base)
        for p, pose in enumerate(poses):
            if key in pose.properties:
                values += w[:, p] * (pose.properties[key] - base)
        out[("", key[0], key[1])] = values
    return out
