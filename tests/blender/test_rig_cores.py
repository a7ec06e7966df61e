"""Any rig, minus Blender: mapping ARKit channels to shape keys or pose actions, and
blending a pose library by per-frame weights (the staged add-on's bpy-free modules)."""

from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest


@pytest.fixture(scope="module")
def pkg(staged_addon: ModuleType) -> SimpleNamespace:
    """The core modules under test (``core/``) and the vendored ``shared``, by name."""
    return SimpleNamespace(shared=importlib.import_module(f"{staged_addon.__name__}.shared"), **{
        sub: importlib.import_module(f"{staged_addon.__name__}.core.{sub}")
        for sub in ("rig_mapping", "pose_blend")})


def test_pose_library_mapping_by_name_group_and_override(pkg: ModuleType) -> None:
    rm = pkg.rig_mapping
    poses = ["jawOpen", "FC_mouth_close", "Smile", "browInnerUp.L", "Wave", "AA"]
    m = rm.map_rig(poses, rm.POSES, overrides={"jawOpen*0.6+mouthFunnel*0.4": "AA"},
                   groups={"Smile": "mouthSmileLeft+mouthSmileRight"})
    drives = {d.target: d for d in m.drives}
    assert drives["jawOpen"].channels == (("jawOpen", 1.0),)
    assert drives["FC_mouth_close"].channels == (("mouthClose", 1.0),)
    assert drives["Smile"].channels == (("mouthSmileLeft", 0.5), ("mouthSmileRight", 0.5))
    assert drives["AA"].channels == (("jawOpen", 0.6), ("mouthFunnel", 0.4))
    assert "browInnerUp.L" in m.unused and "Wave" in m.unused  # no ARKit browInnerUpLeft
    assert "tongueOut" in m.missing and "jawOpen" not in m.missing
    report = m.report()
    assert report.startswith("5/52 ARKit channels drive 4 pose actions")
    for part in ("jawOpen -> jawOpen", "mouthClose -> FC_mouth_close",
                 "mouthSmileLeft+mouthSmileRight -> Smile", "jawOpen*0.6+mouthFunnel*0.4 -> AA",
                 "unused pose actions: browInnerUp.L, Wave"):
        assert part in report
    bs = np.zeros((3, 52), np.float32)
    cols = pkg.shared.blendshapes.ARKIT_BLENDSHAPES
    bs[:, cols.index("mouthSmileLeft")] = [0.0, 1.0, 1.0]
    bs[:, cols.index("mouthSmileRight")] = [0.0, 0.0, 1.0]
    bs[:, cols.index("jawOpen")] = [1.0, 1.0, 1.0]
    bs[:, cols.index("mouthFunnel")] = [0.0, 1.0, 1.0]
    w = m.target_weights(bs)
    assert w["Smile"].tolist() == [0.0, 0.5, 1.0]
    assert np.allclose(w["AA"], [0.6, 1.0, 1.0])  # clipped to 1


@pytest.mark.parametrize(("overrides", "groups", "match"), [
    ({"mouthSmileLeft+mouthSmileRigth": "Smile"}, {}, 'did you mean "mouthSmileRight"'),
    ({"jawOpen+jawOpen": "Smile"}, {}, "listed twice"),
    ({"jawOpen*0+mouthClose": "Smile"}, {}, "share"),
    ({"jawOpen+mouthClose": "Nope"}, {}, 'no pose action "Nope"'),
    ({}, {"Smile": "smile"}, "not an ARKit channel"),
    ({"jawOpen": "Smile", "mouthClose": "Smile"}, {}, "both drive pose action"),
])
def test_bad_declarations_say_what_to_fix(pkg: ModuleType, overrides: dict, groups: dict,
                                         match: str) -> None:
    rm = pkg.rig_mapping
    with pytest.raises(pkg.shared.errors.InputError, match=match):
        rm.map_rig(["Smile", "jawOpen"], rm.POSES, overrides, groups)


def test_shape_key_mapping_report_keeps_its_summary(pkg: ModuleType) -> None:
    rm = pkg.rig_mapping
    names = [*list(pkg.shared.blendshapes.ARKIT_BLENDSHAPES)[:49], "Basis"]
    m = rm.map_rig([n for n in names if n != "Basis"], rm.SHAPE_KEYS, {"jawOpen": ""})
    assert m.report().startswith("48/52 ARKit channels drive 48 shape keys")
    assert "jawOpen" not in m.missing  # unmapped on purpose, not missing
    assert "overrides applied: jawOpen -> (none)" in m.report()


def test_rotations_round_trip_every_euler_order(pkg: ModuleType) -> None:
    pb = pkg.pose_blend
    rng = np.random.default_rng(0)
    for order in pb.EULER_ORDERS:
        e = rng.uniform(-1.4, 1.4, (50, 3))
        q = pb.quat_from_euler(e, order)
        assert np.allclose(np.linalg.norm(q, axis=1), 1.0)
        # the matrix of the quaternion is the product of the axis rotations, first axis
        # applied first (Blender's convention): check against explicit matrices
        m = pb.quat_to_matrix(q)
        for k in range(5):
            rot = np.eye(3)
            for letter in order:
                a = e[k, "XYZ".index(letter)]
                c, s = np.cos(a), np.sin(a)
                axis = {"X": [[1, 0, 0], [0, c, -s], [0, s, c]],
                        "Y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
                        "Z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[letter]
                rot = np.array(axis) @ rot
            assert np.allclose(m[k], rot, atol=1e-9)
        back = np.stack([pb.quat_to_euler(q[k], order) for k in range(len(q))])
        assert np.allclose(back, e, atol=1e-9)


def test_blend_reproduces_each_pose_and_mixes_in_rotation_space(pkg: ModuleType) -> None:
    pb = pkg.pose_blend
    jaw = pb.quat_from_euler(np.array([0.3, 0.0, 0.0]))
    twist = pb.quat_from_euler(np.array([0.0, 0.0, 0.4]))
    open_ = pb.Pose("jawOpen", {"jaw": pb.BonePose(rotation=jaw,
                                                   location=np.array([0.0, np.nan, 0.01]))},
                    {('pose.bones["jaw"]["stretch"]', 0): 1.0})
    side = pb.Pose("jawLeft", {"jaw": pb.BonePose(rotation=twist),
                               "cheek": pb.BonePose(scale=np.array([0.5, 0.5, 0.5]))})
    w = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0], [0, 2]], np.float64)
    modes = {"jaw": "XYZ", "cheek": "QUATERNION"}
    out = pb.blend_poses([open_, side], w, modes, {('pose.bones["jaw"]["stretch"]', 0): 0.2})
    euler = np.stack([out[("jaw", "rotation_euler", i)] for i in range(3)], axis=1)
    assert np.allclose(euler[0], 0) and np.allclose(euler[1], [0.3, 0, 0])
    assert np.allclose(euler[2], [0, 0, 0.4]) and np.allclose(euler[4], [0.15, 0, 0])
    # both at once: the rotation vectors add (not the Euler angles of a product)
    both = pb.quat_exp(pb.quat_log(jaw) + pb.quat_log(twist))
    assert np.allclose(pb.quat_from_euler(euler[3], "XYZ"), both)
    # only keyed components are written; location is linear
    assert ("jaw", "location", 1) not in out
    assert np.allclose(out[("jaw", "location", 2)], [0, 0.01, 0, 0.01, 0.005, 0])
    # scale is multiplicative: two halvings (weight 2) give a quarter, never zero
    assert np.allclose(out[("cheek", "scale", 0)], [1, 1, 0.5, 0.5, 1, 0.25])
    # other properties are linear from their rest
    assert np.allclose(out[("", 'pose.bones["jaw"]["stretch"]', 0)],
                       [0.2, 1.0, 0.2, 1.0, 0.6, 0.2])
    # the same blend written for a quaternion bone and an axis-angle bone
    for mode, prop, n in (("QUATERNION", "rotation_quaternion", 4),
                          ("AXIS_ANGLE", "rotation_axis_angle", 4)):
        o = pb.blend_poses([open_, side], w, {"jaw": mode})
        v = np.stack([o[("jaw", prop, i)] for i in range(n)], axis=1)
        q = v if mode == "QUATERNION" else pb.quat_exp(v[:, 1:] * v[:, :1])
        assert np.allclose(np.abs(np.sum(q[3] * both)), 1.0)


def test_euler_curves_stay_continuous(pkg: ModuleType) -> None:
    pb = pkg.pose_blend
    turn = pb.Pose("turn", {"b": pb.BonePose(rotation=pb.quat_from_euler(
        np.array([0.0, 0.0, 3.0])))})
    w = np.linspace(0, 1.2, 40)[:, None]  # past pi: the angle must not jump by 2 pi
    out = pb.blend_poses([turn], w, {"b": "XYZ"})
    z = out[("b", "rotation_euler", 2)]
    assert np.all(np.abs(np.diff(z)) < 0.2) and z[-1] == pytest.approx(3.6, abs=1e-6)
