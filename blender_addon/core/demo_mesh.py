"""Procedural demo face: geometry and the 52 ARKit shape-key offsets, in numpy only.

Why it exists: a user without an ARKit-rigged character still needs to *see* Facecast's
output, so the add-on can build a stylised head whose shape keys carry the ARKit names.
The maths lives here, free of bpy, so it is testable in plain Python and the Blender
side (``demo_rig.py``) only copies arrays into a mesh.

Conventions (Blender's): metres, +Z up, the face looks down -Y (Blender's front view),
so the subject's *left* is +X. Each shape key is a smooth, local offset field on top
of the basis; paired keys (``...Left`` / ``...Right``) are exact mirror images.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..shared.blendshapes import ARKIT_BLENDSHAPES

# Head ellipsoid semi-axes (x: ear to ear, y: depth, z: height), metres.
HEAD_AXES = (0.075, 0.092, 0.112)
EYE_X, EYE_Z = 0.032, 0.022  # eye centre (subject's left eye at +x)
EYE_RADIUS = 0.0125
BROW_Z = 0.042
MOUTH_TARGET_Z = -0.045
MOUTH_HALF_WIDTH = 0.024
CHEEK_X, CHEEK_Z = 0.045, -0.012

MAT_SKIN, MAT_EYE, MAT_IRIS, MAT_MOUTH = range(4)
MATERIAL_NAMES = ("skin", "eye", "iris", "mouth")


@dataclasses.dataclass
class DemoFace:
    """Everything needed to build the demo rig; arrays are float64, offsets in metres."""

    vertices: np.ndarray  # (N, 3) basis positions
    faces: list[tuple[int, ...]]  # quads and triangles, counter-clockwise seen from outside
    material_indices: np.ndarray  # (F,) into MATERIAL_NAMES
    shape_keys: dict[str, np.ndarray]  # ARKit name -> (N, 3) offset from the basis
    mouth_z: float  # height of the lip line (where the slit is cut)


# --------------------------------------------------------------------------------------
# Small field helpers


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(p: np.ndarray, cx: float, cz: float, sx: float, sz: float) -> np.ndarray:
    """Bump centred at (cx, cz) on the face, restricted to the front of the head.

    Using x/z distances plus a front mask (rather than 3-D distance) keeps features
    from leaking through to the back of the skull.
    """
    g = np.exp(-(((p[:, 0] - cx) / sx) ** 2 + ((p[:, 2] - cz) / sz) ** 2))
    return g * _smoothstep(0.01, -0.03, p[:, 1])


def _rotate(points: np.ndarray, center: np.ndarray, axis: str, angle: float) -> np.ndarray:
    """Offsets that rotate ``points`` about ``center`` around the x or z axis."""
    c, s = math.cos(angle), math.sin(angle)
    rel = points - center
    out = rel.copy()
    if axis == "x":  # positive angle turns the front (-y) downwards
        out[:, 1] = rel[:, 1] * c - rel[:, 2] * s
        out[:, 2] = rel[:, 1] * s + rel[:, 2] * c
    else:  # "z": positive angle turns the front (-y) towards +x
        out[:, 0] = rel[:, 0] * c - rel[:, 1] * s
        out[:, 1] = rel[:, 0] * s + rel[:, 1] * c
    return out - rel


def _uv_sphere(rings: int, segments: int) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Unit sphere, segment 0 facing -Y, ring 1 at the top; poles are the last two verts."""
    theta = np.pi * np.arange(1, rings) / rings
    phi = 2.0 * np.pi * np.arange(segments) / segments
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    grid = np.stack(
        [
            st * np.sin(phi)[None, :],
            -st * np.cos(phi)[None, :],
            ct * np.ones_like(phi)[None, :],
        ],
        axis=-1,
    ).reshape(-1, 3)
    top, bottom = len(grid), len(grid) + 1
    verts = np.vstack([grid, [[0.0, 0.0, 1.0]], [[0.0, 0.0, -1.0]]])

    def vid(r: int, j: int) -> int:
        return r * segments + (j % segments)

    faces: list[tuple[int, ...]] = []
    for j in range(segments):
        faces.append((top, vid(0, j), vid(0, j + 1)))
        for r in range(rings - 2):
            faces.append((vid(r, j), vid(r + 1, j), vid(r + 1, j + 1), vid(r, j + 1)))
        faces.append((bottom, vid(rings - 2, j + 1), vid(rings - 2, j)))
    return verts, faces


def _orient_outward(
    verts: np.ndarray,
    faces: list[tuple[int, ...]],
    center: np.ndarray,
) -> list[tuple[int, ...]]:
    """Flip any face whose normal points at ``center``, so shading is right in Blender."""
    out = []
    for f in faces:
        a, b, c = verts[f[0]], verts[f[1]], verts[f[2]]
        n = np.cross(b - a, c - a)
        if np.dot(n, verts[list(f)].mean(axis=0) - center) < 0:
            f = tuple(reversed(f))
        out.append(f)
    return out


# --------------------------------------------------------------------------------------
# Geometry


def _build_geometry(rings: int, segments: int) -> tuple[np.ndarray, list, np.ndarray, dict]:
    """Head with a mouth slit, two eyeballs with a cornea bump, and a tongue."""
    unit, faces = _uv_sphere(rings, segments)
    head = unit * np.asarray(HEAD_AXES)
    n_grid = (rings - 1) * segments

    # The mouth is a row of duplicated vertices on the ring nearest the lip line: faces
    # below the ring use the copies, so the lower lip can move away and open a real gap.
    ring_z = head[:n_grid:segments, 2]
    mouth_ring = int(np.argmin(np.abs(ring_z - MOUTH_TARGET_Z)))
    mouth_z = float(ring_z[mouth_ring])
    ring_ids = mouth_ring * segments + np.arange(segments)
    inside = (np.abs(head[ring_ids, 0]) < MOUTH_HALF_WIDTH) & (head[ring_ids, 1] < 0)
    slit = ring_ids[inside]
    dup_of = {int(v): len(head) + k for k, v in enumerate(slit)}
    head = np.vstack([head, head[slit]])
    below_band = {r * segments + j for r in (mouth_ring + 1,) for j in range(segments)}
    new_faces = []
    for f in faces:
        if any(v in below_band for v in f):
            f = tuple(dup_of.get(v, v) for v in f)
        new_faces.append(f)
    faces = new_faces
    # side: +1 upper-lip side of the slit, -1 lower side (copies), by height elsewhere.
    side = np.sign(head[:, 2] - mouth_z)
    side[slit] = 1.0
    side[len(head) - len(slit) :] = -1.0

    # Sculpt the basis: nose, eye sockets, brow ridge, lips, chin.
    p = head.copy()
    dy = np.zeros(len(p))
    dy -= 0.026 * _gauss(p, 0.0, -0.002, 0.011, 0.026)  # nose
    dy -= 0.008 * _gauss(p, 0.0, -0.024, 0.016, 0.008)  # nostrils/tip base
    for sx in (1.0, -1.0):
        dy += 0.011 * _gauss(p, sx * EYE_X, EYE_Z, 0.016, 0.012)  # sockets
        dy -= 0.005 * _gauss(p, sx * 0.030, BROW_Z, 0.022, 0.007)  # brow ridge
    dy -= 0.007 * _gauss(p, 0.0, mouth_z, 0.026, 0.012)  # lips
    dy -= 0.006 * _gauss(p, 0.0, -0.092, 0.02, 0.014)  # chin
    head[:, 1] += dy
    head_faces = _orient_outward(head, faces, np.zeros(3))
    mats = [MAT_SKIN] * len(head_faces)

    verts = [head]
    all_faces = list(head_faces)
    offset = len(head)
    eye_ids = {}
    eye_centers = {}
    for sx, name in ((1.0, "Left"), (-1.0, "Right")):
        ev, ef = _uv_sphere(10, 16)
        ev = ev * EYE_RADIUS
        front = ev[:, 1] < -0.8 * EYE_RADIUS
        ev[front, 1] -= 0.0015  # cornea bump: makes eye rotation visible
        surface_y = -HEAD_AXES[1] * math.sqrt(
            1 - (EYE_X / HEAD_AXES[0]) ** 2 - (EYE_Z / HEAD_AXES[2]) ** 2
        )
        center = np.array([sx * EYE_X, surface_y + EYE_RADIUS - 0.001, EYE_Z])
        ef = _orient_outward(ev, ef, np.zeros(3))
        for f in ef:
            cy = ev[list(f), 1].mean()
            mats.append(MAT_IRIS if cy < -0.75 * EYE_RADIUS else MAT_EYE)
        verts.append(ev + center)
        all_faces += [tuple(v + offset for v in f) for f in ef]
        eye_ids[name] = np.arange(offset, offset + len(ev))
        eye_centers[name] = center
        offset += len(ev)

    # Tongue: a flat ellipsoid resting behind the lower lip.
    tv, tf = _uv_sphere(8, 12)
    lip_y = float(head[slit, 1].min()) if len(slit) else -HEAD_AXES[1]
    t_center = np.array([0.0, lip_y + 0.034, mouth_z - 0.004])
    tf = _orient_outward(tv, tf, np.zeros(3))
    verts.append(tv * np.array([0.014, 0.022, 0.005]) + t_center)
    all_faces += [tuple(v + offset for v in f) for f in tf]
    mats += [MAT_MOUTH] * len(tf)
    tongue_ids = np.arange(offset, offset + len(tv))

    vertices = np.vstack(verts)
    info = {
        "n_head": len(head),
        "side": np.concatenate([side, np.zeros(len(vertices) - len(head))]),
        "mouth_z": mouth_z,
        "eye_ids": eye_ids,
        "eye_centers": eye_centers,
        "tongue_ids": tongue_ids,
        "lip_y": lip_y,
    }
    return vertices, all_faces, np.asarray(mats, dtype=np.int32), info


# --------------------------------------------------------------------------------------
# Shape keys


def _blink(p: np.ndarray, info: dict, ex: float, ez: float, eye: str) -> np.ndarray:
    """Close one eye: pull the socket skin onto a shell just in front of the eyeball.

    The skin of the socket lies *behind* the eyeball, so a plain downward shift would
    hide the lid; instead the upper socket is folded down to a lid line below the eye's
    centre and every socket vertex is brought forward onto a sphere enclosing the eye.
    """
    center = info["eye_centers"][eye]
    lid_r = EYE_RADIUS + 0.004  # clears the cornea bump even across coarse faces
    line = ez - 0.45 * EYE_RADIUS
    r = np.hypot(p[:, 0] - ex, p[:, 2] - ez)
    w = _smoothstep(1.8 * EYE_RADIUS, 1.15 * EYE_RADIUS, r) * _smoothstep(0.0, -0.03, p[:, 1])
    target = p.copy()
    upper = p[:, 2] > line
    target[upper, 2] = line + (p[upper, 2] - ez) * 0.12
    dx, dz = target[:, 0] - center[0], target[:, 2] - center[2]
    shell_y = center[1] - np.sqrt(np.clip(lid_r**2 - dx**2 - dz**2, 0.0, None))
    target[:, 1] = np.minimum(p[:, 1], shell_y)  # only ever forward, never into the eye
    return (target - p) * w[:, None]


def _sided_keys(p: np.ndarray, info: dict, s: float, eye: str) -> dict[str, np.ndarray]:
    """Offsets for the keys with a Left/Right variant; ``s`` = +1 for left, -1 for right."""
    n = len(p)
    head = np.zeros(n, dtype=bool)
    head[: info["n_head"]] = True
    side = info["side"]
    mz = info["mouth_z"]
    d: dict[str, np.ndarray] = {}

    def field(w: np.ndarray, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> np.ndarray:
        return (w * head)[:, None] * np.array([dx, dy, dz])[None, :]

    ex, ez = s * EYE_X, EYE_Z
    eye_w = _gauss(p, ex, ez, 0.017, 0.013)
    upper_lid = eye_w * _smoothstep(ez - 0.004, ez + 0.004, p[:, 2])
    lower_lid = eye_w * _smoothstep(ez + 0.002, ez - 0.006, p[:, 2])

    d["eyeBlink"] = _blink(p, info, ex, ez, eye) * head[:, None]
    d["eyeSquint"] = field(lower_lid, dz=0.004, dy=-0.001) + field(upper_lid, dz=-0.002)
    d["eyeWide"] = field(upper_lid, dz=0.004, dy=0.001)

    ids, center = info["eye_ids"][eye], info["eye_centers"][eye]
    for key, axis, angle in (
        ("eyeLookDown", "x", 0.35),
        ("eyeLookUp", "x", -0.35),
        ("eyeLookIn", "z", -s * 0.45),
        ("eyeLookOut", "z", s * 0.45),
    ):
        off = np.zeros((n, 3))
        off[ids] = _rotate(p[ids], center, axis, angle)
        if key in ("eyeLookDown", "eyeLookUp"):  # lids follow the gaze a little
            off += field(upper_lid, dz=-0.002 if key == "eyeLookDown" else 0.002)
        d[key] = off

    corner = _gauss(p, s * MOUTH_HALF_WIDTH, mz, 0.011, 0.010)
    half = _smoothstep(-0.004, 0.006, s * p[:, 0])  # this side of the face
    lips = _gauss(p, 0.0, mz, 0.03, 0.011)
    upper, lower = lips * (side > 0), lips * (side < 0)
    d["mouthSmile"] = field(corner, dx=s * 0.005, dy=0.003, dz=0.008)
    d["mouthFrown"] = field(corner, dx=s * 0.001, dz=-0.007)
    d["mouthDimple"] = field(corner, dx=s * 0.002, dy=0.004)
    d["mouthStretch"] = field(corner, dx=s * 0.008, dz=-0.002)
    d["mouthPress"] = field(upper * half, dy=0.002, dz=-0.002) + field(
        lower * half, dy=0.002, dz=0.002
    )
    d["mouthLowerDown"] = field(lower * half, dz=-0.006, dy=-0.001)
    d["mouthUpperUp"] = field(upper * half, dz=0.006, dy=-0.001)
    d["browDown"] = field(_gauss(p, s * 0.027, BROW_Z, 0.02, 0.012), dx=-s * 0.002, dz=-0.006)
    d["browOuterUp"] = field(_gauss(p, s * 0.048, BROW_Z, 0.016, 0.013), dz=0.008)
    d["cheekSquint"] = field(_gauss(p, s * 0.036, EYE_Z - 0.02, 0.016, 0.011), dz=0.005, dy=-0.002)
    d["noseSneer"] = field(_gauss(p, s * 0.009, -0.012, 0.008, 0.012), dz=0.004, dx=s * 0.001)
    return d


def _central_keys(p: np.ndarray, info: dict) -> dict[str, np.ndarray]:
    """Offsets for keys without a side (jaw, lips as a whole, tongue, cheeks)."""
    n = len(p)
    head = np.zeros(n, dtype=bool)
    head[: info["n_head"]] = True
    side, mz = info["side"], info["mouth_z"]

    def field(w: np.ndarray, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> np.ndarray:
        return (w * head)[:, None] * np.array([dx, dy, dz])[None, :]

    # Jaw: everything under the lip line, fading towards the back of the head; the lower
    # lip (the slit copies) moves fully in the middle and tapers to the mouth corners.
    profile = np.clip(1.0 - (p[:, 0] / MOUTH_HALF_WIDTH) ** 2, 0.0, 1.0)
    jaw = np.maximum(_smoothstep(0.0, 0.014, mz - p[:, 2]), (side < 0) * profile)
    jaw = jaw * _smoothstep(0.06, 0.0, p[:, 1]) * head
    tongue = np.zeros(n)
    tongue[info["tongue_ids"]] = 1.0
    pivot = np.array([0.0, 0.02, mz + 0.02])
    d: dict[str, np.ndarray] = {}
    d["jawOpen"] = _rotate(p, pivot, "x", 0.25) * (jaw + 0.8 * tongue)[:, None]
    d["jawForward"] = (jaw + tongue)[:, None] * np.array([0.0, -0.008, 0.0])
    d["jawLeft"] = (jaw + tongue)[:, None] * np.array([0.008, 0.0, 0.0])
    d["jawRight"] = (jaw + tongue)[:, None] * np.array([-0.008, 0.0, 0.0])

    lips = _gauss(p, 0.0, mz, 0.03, 0.011)
    upper, lower = lips * (side > 0), lips * (side < 0)
    toward_mid = -np.sign(p[:, 0]) * _smoothstep(0.0, MOUTH_HALF_WIDTH, np.abs(p[:, 0]))
    d["mouthClose"] = field(upper, dz=-0.003) + field(lower, dz=0.008)
    d["mouthFunnel"] = (
        field(lips, dy=-0.006)
        + field(upper, dz=0.003)
        + field(lower, dz=-0.003)
        + (lips * head * toward_mid)[:, None] * np.array([0.004, 0.0, 0.0])
    )
    d["mouthPucker"] = field(lips, dy=-0.008) + (lips * head * toward_mid)[:, None] * np.array(
        [0.008, 0.0, 0.0]
    )
    mouth_area = _gauss(p, 0.0, mz, 0.035, 0.016)
    d["mouthLeft"] = field(mouth_area, dx=0.006)
    d["mouthRight"] = field(mouth_area, dx=-0.006)
    d["mouthRollLower"] = field(lower, dy=0.004, dz=0.002)
    d["mouthRollUpper"] = field(upper, dy=0.004, dz=-0.002)
    chin = _gauss(p, 0.0, mz - 0.02, 0.025, 0.02) * (side < 0)
    d["mouthShrugLower"] = field(lower, dz=0.004) + field(chin, dy=-0.002, dz=0.002)
    d["mouthShrugUpper"] = field(upper, dz=0.003)
    d["browInnerUp"] = field(
        _gauss(p, 0.012, BROW_Z, 0.012, 0.012) + _gauss(p, -0.012, BROW_Z, 0.012, 0.012), dz=0.008
    )
    cheeks = np.zeros((n, 3))
    for s in (1.0, -1.0):
        w = _gauss(p, s * CHEEK_X, CHEEK_Z - 0.01, 0.02, 0.02) * head
        cheeks += w[:, None] * np.array([s * 0.008, -0.004, 0.0])
    d["cheekPuff"] = cheeks
    tongue_out = tongue[:, None] * np.array([0.0, -0.034, -0.004])
    d["tongueOut"] = tongue_out + field(lower, dz=-0.002)
    return d


def build_demo_face(rings: int = 48, segments: int = 64) -> DemoFace:
    """Build the demo head and all 52 ARKit shape-key offsets (about 3.4k vertices)."""
    vertices, faces, mats, info = _build_geometry(rings, segments)
    keys: dict[str, np.ndarray] = {}
    keys.update(_central_keys(vertices, info))
    for s, eye in ((1.0, "Left"), (-1.0, "Right")):
        for base, off in _sided_keys(vertices, info, s, eye).items():
            keys[base + eye] = off
    missing = [name for name in ARKIT_BLENDSHAPES if name not in keys]
    extra = [name for name in keys if name not in ARKIT_BLENDSHAPES]
    if missing or extra:  # a programming error, never user input
        raise AssertionError(f"demo face keys out of sync: missing={missing} extra={extra}")
    ordered = {name: keys[name] for name in ARKIT_BLENDSHAPES}
    return DemoFace(vertices, faces, mats, ordered, info["mouth_z"])
