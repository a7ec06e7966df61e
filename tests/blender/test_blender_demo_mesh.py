"""The demo face's geometry and shape keys, checked in plain numpy (no Blender needed).

The add-on package is staged exactly as it is laid out in the zip (code + vendored
shared/) and imported under a private name, so ``from .shared...`` resolves as it will
inside Blender.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np
import pytest

from shared.blendshapes import ARKIT_BLENDSHAPES


@pytest.fixture(scope="module")
def demo_mesh(staged_addon: ModuleType) -> ModuleType:
    return importlib.import_module(f"{staged_addon.__name__}.core.demo_mesh")


@pytest.fixture(scope="module")
def face(demo_mesh: ModuleType):
    return demo_mesh.build_demo_face()


def test_size_and_names(face) -> None:
    assert 2000 <= len(face.vertices) <= 5000
    assert list(face.shape_keys) == list(ARKIT_BLENDSHAPES)
    for name, off in face.shape_keys.items():
        assert off.shape == face.vertices.shape, name
        assert np.isfinite(off).all(), name
        assert np.abs(off).max() > 1e-3, f"{name} does not visibly move anything"
        assert np.abs(off).max() < 0.05, f"{name} moves more than 5 cm"


def test_faces_valid_and_outward(face, demo_mesh: ModuleType) -> None:
    v = face.vertices
    assert len(face.material_indices) == len(face.faces)
    head = face.material_indices == demo_mesh.MAT_SKIN
    outward = 0
    for f, is_head in zip(face.faces, head, strict=True):
        assert len(set(f)) == len(f) and max(f) < len(v)
        if is_head:
            a, b, c = v[f[0]], v[f[1]], v[f[2]]
            outward += np.dot(np.cross(b - a, c - a), v[list(f)].mean(0)) > 0
    assert outward == head.sum()


def test_faces_front_minus_y(face) -> None:
    v = face.vertices
    nose_tip = v[np.argmin(v[:, 1])]
    assert abs(nose_tip[0]) < 1e-6 and nose_tip[1] < -0.1  # nose sticks out towards -Y


def test_jaw_open_opens_mouth(face) -> None:
    v, jaw = face.vertices, face.shape_keys["jawOpen"]
    below = (v[:, 2] < face.mouth_z - 0.02) & (v[:, 1] < -0.05)
    above = (v[:, 2] > face.mouth_z + 0.02) & (v[:, 1] < -0.05)
    assert (jaw[below, 2] < -0.005).mean() > 0.9  # chin goes down
    assert np.abs(jaw[above]).max() < 1e-9  # upper face stays
    # The lip line is split: some lower-lip vertices sit exactly on upper-lip ones and
    # separate, which is what makes a visible gap.
    on_line = np.where(np.isclose(v[:, 2], face.mouth_z) & (v[:, 1] < -0.05))[0]
    gaps = [
        jaw[i, 2] - jaw[j, 2]
        for i in on_line
        for j in on_line
        if i != j and np.allclose(v[i], v[j])
    ]
    assert gaps and max(np.abs(gaps)) > 0.01


def test_left_is_plus_x_and_pairs_mirror(face) -> None:
    v = face.vertices
    blink = np.linalg.norm(face.shape_keys["eyeBlinkLeft"], axis=1)
    assert (v[blink > 1e-4, 0] > 0).all()  # subject's left is +X when facing -Y
    mirror = v * np.array([-1.0, 1.0, 1.0])
    # index of each vertex's mirror image
    order = np.lexsort(np.round(v * 1e6).T)
    morder = np.lexsort(np.round(mirror * 1e6).T)
    mirror_of = np.empty(len(v), dtype=int)
    mirror_of[order] = morder
    assert np.allclose(v[mirror_of], mirror, atol=1e-9)
    for name in ARKIT_BLENDSHAPES:
        if name.endswith("Left"):
            left, right = face.shape_keys[name], face.shape_keys[name[:-4] + "Right"]
            assert np.allclose(right[mirror_of], left * [-1, 1, 1], atol=1e-9), name


def test_expressions_move_the_right_way(face) -> None:
    v, k = face.vertices, face.shape_keys
    corner = np.argmax(np.linalg.norm(k["mouthSmileLeft"], axis=1))
    assert v[corner, 0] > 0.015 and abs(v[corner, 2] - face.mouth_z) < 0.01
    assert k["mouthSmileLeft"][corner, 2] > 0.004  # lip corner goes up
    assert k["mouthFrownLeft"][corner, 2] < -0.004  # and down for a frown
    inner = np.argmax(np.linalg.norm(k["browInnerUp"], axis=1))
    assert abs(v[inner, 0]) < 0.025 and k["browInnerUp"][inner, 2] > 0.005
    outer = np.argmax(np.linalg.norm(k["browOuterUpLeft"], axis=1))
    assert v[outer, 0] > 0.035 and k["browOuterUpLeft"][outer, 2] > 0.005
    blink = k["eyeBlinkLeft"]
    moved = np.linalg.norm(blink, axis=1) > 1e-3
    assert blink[moved, 1].mean() < 0  # lid comes forward over the eyeball
    assert blink[moved & (v[:, 2] > 0.03), 2].mean() < 0  # upper lid comes down
    tongue = np.linalg.norm(k["tongueOut"], axis=1).argmax()
    assert k["tongueOut"][tongue, 1] < -0.02  # tongue moves out of the face (-Y)
    assert k["cheekPuff"][np.argmax(k["cheekPuff"][:, 0]), 0] > 0.005
