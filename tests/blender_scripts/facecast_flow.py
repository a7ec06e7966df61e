"""Run inside a fresh bpy process: drive the Facecast panel's workflows for real.

Usage: python facecast_flow.py ZIP SCENARIO CONFIG_JSON OUT_JSON

Installs the built zip, builds a scene (the demo face with ARKit shape keys and/or a
bone-driven face rig built here, a sound strip of real speech), then runs SCENARIO,
stepping ``job_session.step()`` in a loop exactly as Blender's timer would (the PyPI
bpy module never fires timers). A backend is started by the add-on's own "Start
Backend" operator: the real one (CONFIG's ``python``) or the test-owned one with
deterministic jobs (CONFIG's ``doubles``, a wrapper around ``tests/job_doubles.py``).
Results go to OUT_JSON.
"""

import json
import math
import os
import sys
import time
import traceback

import bpy
import numpy as np

ZIP, SCENARIO, CONFIG, OUT = sys.argv[1:5]
with open(CONFIG, encoding="utf-8") as _fh:
    cfg = json.load(_fh)
MODULE = "bl_ext.user_default.facecast"
result: dict = {"scenario": SCENARIO, "blender": bpy.app.version_string}
TEXT = "Grüße — naïve café, 日本語! Line two."
TEXT2 = "A second take, from a Text datablock."


def setup_addon():
    bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default",
                                             enable_on_install=True)
    import importlib

    pkg = importlib.import_module(MODULE)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_address = cfg.get("address", "tcp://127.0.0.1:5557")
    prefs.key_file = cfg.get("key_file", "")
    prefs.connect_timeout = float(cfg.get("timeout", 5.0))
    return pkg


def build_scene(fps=24, fps_base=1.0, with_strip=True):
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, fps_base
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    bpy.ops.facecast.create_demo_rig()
    face = bpy.context.view_layer.objects.active
    cam_data = bpy.data.cameras.new("Cam")
    cam = bpy.data.objects.new("Cam", cam_data)
    scene.collection.objects.link(cam)
    cam.location = (0.0, -1.0, 0.0)
    cam.rotation_euler = (1.5708, 0.0, 0.0)
    scene.camera = cam
    s = scene.facecast
    s.target = face
    if with_strip:
        add_voice(scene)
    return scene, face


def add_voice(scene):
    """The dialogue as a sound strip at frame 1 — or, where this bpy module was built
    without Audaspace (the PyPI 4.2 module), as a file starting at frame 1."""
    from bl_ext.user_default.facecast import compat

    s = scene.facecast
    try:
        strip = compat.new_sound_strip(scene, "voice", cfg["wav"], channel=1, frame_start=1)
    except RuntimeError as exc:
        if "Audaspace" not in str(exc):
            raise
        result["no_audaspace"] = True
        s.audio_source, s.audio_file, s.audio_start_frame = "FILE", cfg["wav"], 1
        return None
    s.audio_source = "STRIP"
    s.sound_strip = strip.name
    return strip


def sound_channel(scene):
    from bl_ext.user_default.facecast import compat

    strip = compat.sequencer_strips(scene).get("voice")
    return strip.channel if strip is not None else 0


# -- a bone-driven face rig, built by code ------------------------------------------------

BONES = {  # name: (head, tail, parent, rotation mode)
    "head": ((0, 0, 0), (0, 0, 0.2), None, "QUATERNION"),
    "jaw": ((0, 0.02, -0.02), (0, -0.08, -0.07), "head", "QUATERNION"),
    "lip_lower": ((0, -0.095, -0.045), (0, -0.105, -0.045), "jaw", "QUATERNION"),
    "lip_corner.L": ((0.03, -0.09, -0.04), (0.03, -0.1, -0.04), "head", "QUATERNION"),
    "lip_corner.R": ((-0.03, -0.09, -0.04), (-0.03, -0.1, -0.04), "head", "QUATERNION"),
    "brow_inner.L": ((0.015, -0.09, 0.06), (0.015, -0.1, 0.07), "head", "XZY"),
    "brow_inner.R": ((-0.015, -0.09, 0.06), (-0.015, -0.1, 0.07), "head", "QUATERNION"),
    "cheek.L": ((0.045, -0.07, -0.01), (0.045, -0.08, -0.01), "head", "QUATERNION"),
    "cheek.R": ((-0.045, -0.07, -0.01), (-0.045, -0.08, -0.01), "head", "AXIS_ANGLE"),
}
# pose action: ({(bone, property): values}, facecast_channels or None)
POSES = {
    "jawOpen": ({("jaw", "rotation_quaternion"): (math.cos(0.16), math.sin(0.16), 0.0, 0.0),
                 ("jaw", '["stretch"]'): (1.0,)}, None),
    "mouthClose": ({("lip_lower", "location"): (0.0, 0.0, 0.004)}, None),
    "Smile": ({("lip_corner.L", "location"): (0.006, 0.0, 0.008),
               ("lip_corner.R", "location"): (-0.006, 0.0, 0.008)},
              "mouthSmileLeft+mouthSmileRight"),
    "FC_browInnerUp": ({("brow_inner.L", "rotation_euler"): (0.2, 0.0, 0.1),
                        ("brow_inner.R", "rotation_euler"): (0.2, 0.0, -0.1)}, None),
    "cheekPuff": ({("cheek.L", "scale"): (1.2, 1.2, 1.2),
                   ("cheek.R", "rotation_axis_angle"): (0.3, 0.0, 0.0, 1.0)}, None),
    "Wave": ({("head", "location"): (0.0, 0.0, 0.01)}, None),  # drives nothing: unused
}


def build_bone_rig(scene):
    """An armature whose bones deform a head mesh (vertex groups), a pose library of
    actions (one per channel, one group pose), and the animator's own active action."""
    from bl_ext.user_default.facecast import compat

    arm = bpy.data.armatures.new("FaceRig")
    rig = bpy.data.objects.new("FaceRig", arm)
    scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for name, (head, tail, parent, _mode) in BONES.items():
        b = arm.edit_bones.new(name)
        b.head, b.tail = head, tail
        if parent:
            b.parent = arm.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    for name, (_h, _t, _p, mode) in BONES.items():
        rig.pose.bones[name].rotation_mode = mode
    jaw = rig.pose.bones["jaw"]
    jaw["stretch"] = 0.0
    jaw.id_properties_ui("stretch").update(default=0.0, min=0.0, max=1.0)

    # A head mesh: a grid in the face plane whose lower rows follow the jaw.
    mesh = bpy.data.meshes.new("FaceRigMesh")
    verts = [(x * 0.01, -0.1, z * 0.01) for z in range(-8, 9) for x in range(-5, 6)]
    faces = [(r * 11 + c, r * 11 + c + 1, (r + 1) * 11 + c + 1, (r + 1) * 11 + c)
             for r in range(16) for c in range(10)]
    mesh.from_pydata(verts, [], faces)
    body = bpy.data.objects.new("FaceRigMesh", mesh)
    scene.collection.objects.link(body)
    body.parent = rig
    mod = body.modifiers.new("Armature", "ARMATURE")
    mod.object = rig
    for name in BONES:
        body.vertex_groups.new(name=name)
    for i, (x, _y, z) in enumerate(verts):
        group = "jaw" if z < -0.035 else ("brow_inner.L" if z > 0.05 and x > 0 else
                                          ("brow_inner.R" if z > 0.05 else "head"))
        body.vertex_groups[group].add([i], 1.0, "REPLACE")

    for name, (channels, group) in POSES.items():
        action = bpy.data.actions.new(name)
        fcurves = compat.fcurves_for(action, rig)
        for (bone, prop), values in channels.items():
            path = f'pose.bones["{bone}"]{prop}' if prop.startswith("[") else \
                f'pose.bones["{bone}"].{prop}'
            for i, v in enumerate(values):
                fc = fcurves.new(path, index=i)
                fc.keyframe_points.insert(1, v)
        if group:
            action["facecast_channels"] = group
        action.use_fake_user = True
    own = bpy.data.actions.new("AnimatorHead")
    fc = compat.fcurves_for(own, rig).new('pose.bones["head"].rotation_quaternion', index=3)
    fc.keyframe_points.insert(1, 0.0)
    fc.keyframe_points.insert(40, 0.05)
    compat.assign_action(rig, own)
    return rig, body


def pose_expectation(weights, frame_i):
    """What each bone channel must be at row ``frame_i`` of the target weights, computed
    with mathutils (not the add-on's numpy): rest + weighted offsets, rotations through
    the exponential map, scale multiplicatively."""
    from mathutils import Euler, Quaternion, Vector

    w = {name: float(v[frame_i]) for name, v in weights.items()}
    qj = Quaternion(POSES["jawOpen"][0][("jaw", "rotation_quaternion")])
    out = {"jaw": Quaternion(qj.to_exponential_map() * w["jawOpen"]),
           "stretch": w["jawOpen"],
           "lip_lower": Vector((0, 0, 0.004)) * w["mouthClose"],
           "lip_corner.L": Vector((0.006, 0, 0.008)) * w["Smile"],
           "lip_corner.R": Vector((-0.006, 0, 0.008)) * w["Smile"]}
    ql = Euler((0.2, 0.0, 0.1), "XZY").to_quaternion()
    out["brow_inner.L"] = Quaternion(ql.to_exponential_map() * w["FC_browInnerUp"])
    qr = Euler((0.2, 0.0, -0.1), "XYZ").to_quaternion()  # keyed as Euler on a quat bone
    out["brow_inner.R"] = Quaternion(qr.to_exponential_map() * w["FC_browInnerUp"])
    out["cheek.L"] = 1.2 ** w["cheekPuff"]
    out["cheek.R"] = Quaternion((0, 0, 1), 0.3 * w["cheekPuff"])
    return out


def bone_readings(rig):
    from mathutils import Euler

    pb = rig.pose.bones
    return {"jaw": pb["jaw"].rotation_quaternion.copy(), "stretch": float(pb["jaw"]["stretch"]),
            "lip_lower": pb["lip_lower"].location.copy(),
            "lip_corner.L": pb["lip_corner.L"].location.copy(),
            "lip_corner.R": pb["lip_corner.R"].location.copy(),
            "brow_inner.L": Euler(pb["brow_inner.L"].rotation_euler,
                                  pb["brow_inner.L"].rotation_mode).to_quaternion(),
            "brow_inner.R": pb["brow_inner.R"].rotation_quaternion.copy(),
            "cheek.L": float(pb["cheek.L"].scale[0]),
            "cheek.R": _axis_angle_quat(pb["cheek.R"].rotation_axis_angle)}


def _axis_angle_quat(aa):
    from mathutils import Quaternion

    return Quaternion(aa[1:], aa[0])


def reading_error(got, want):
    """Largest difference over all channels (quaternions compared up to sign)."""
    worst = 0.0
    for key, w in want.items():
        g = got[key]
        if isinstance(w, float):
            d = abs(g - w)
        elif len(w) == 4:
            d = min(max(abs(a - b) for a, b in zip(g, w, strict=False)),
                    max(abs(a + b) for a, b in zip(g, w, strict=False)))
        else:
            d = max(abs(a - b) for a, b in zip(g, w, strict=False))
        worst = max(worst, d)
    return worst


def fcurve_snapshot(action):
    from bl_ext.user_default.facecast import compat

    return sorted((fc.data_path, fc.array_index,
                   [tuple(round(c, 6) for c in k.co) for k in fc.keyframe_points])
                  for fc in compat.action_fcurves(action))


# -- driving the add-on --------------------------------------------------------------------


def start_backend(executable):
    from bl_ext.user_default.facecast import job_session

    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_executable = executable
    assert bpy.ops.facecast.start_backend() == {"FINISHED"}
    t0 = time.monotonic()
    job_session.drive(90.0, until=lambda: job_session.SESSION.backend.ready)
    result["backend_ready_s"] = round(time.monotonic() - t0, 2)
    result["backend_state"] = job_session.backend_status()[0]
    server = job_session.SESSION.backend.link.server
    result["backend_features"] = server.get("features", {})
    return job_session


def draw_panel_lines(pkg):
    """The labels the panel draws now (through its real draw code)."""
    lines = []

    class _L:
        def __getattr__(self, name):
            if name == "label":
                return lambda *a, **k: lines.append(k.get("text", "")) or self
            return lambda *a, **k: self

        def __setattr__(self, name, value):
            pass

    pkg.ui.panel.draw_panel(_L(), bpy.context)
    return lines


def call_op(op):
    """Run an operator; an ERROR report raises RuntimeError in background mode."""
    try:
        return sorted(op())
    except RuntimeError as exc:
        return ["RuntimeError", str(exc)]


def fcurve_values(id_data, path, frames):
    from bl_ext.user_default.facecast import compat

    fc = compat.find_assigned_fcurve(id_data, path)
    if fc is None:
        return None
    return [float(fc.evaluate(float(f))) for f in frames]


def evaluated(scene, frames, read):
    """``read()`` after Blender evaluated each frame (NLA, active action, drivers)."""
    out = []
    for f in frames:
        scene.frame_set(int(f))
        out.append(read())
    scene.frame_set(1)
    return out


def key_two_emotions(scene, second="angry"):
    s = scene.facecast
    for frame, happy, other in ((1, 0.0, 0.0), (10, 0.0, 0.0), (20, 1.0, 0.0), (40, 1.0, 0.0),
                                (50, 0.0, 0.0), (60, 0.0, 0.8)):
        scene.frame_set(frame)
        s.happy = happy
        setattr(s, second, other)
        assert bpy.ops.facecast.key_emotion() == {"FINISHED"}
    scene.frame_set(1)


def takes_info(id_data):
    from bl_ext.user_default.facecast.writers import takes

    anim = id_data.animation_data
    return {"takes": [[t.number, t.track, t.action, t.muted, t.start, t.end]
                      for t in takes.takes_of(id_data)],
            "active": anim.action.name if anim is not None and anim.action else None}


def animate(job_session, timeout=120.0):
    s = bpy.context.scene.facecast
    assert bpy.ops.facecast.animate() == {"FINISHED"}, s.last_error
    job_session.drive(timeout)
    return s.status, s.last_error, job_session.SESSION.run


# ------------------------------------------------------------------------------------------


def scenario_ui(pkg):
    from bl_ext.user_default.facecast import job_session, scene_inputs
    from bl_ext.user_default.facecast.core import animate_job
    from bl_ext.user_default.facecast.shared.emotions import EMOTIONS

    result["panels"] = [n for n in ("FACECAST_PT_view3d", "FACECAST_PT_sequencer")
                        if hasattr(bpy.types, n)]
    result["panel_spaces"] = sorted(getattr(bpy.types, n).bl_space_type
                                    for n in result["panels"])
    result["operators"] = sorted(n for n in dir(bpy.ops.facecast))
    scene, face = build_scene(fps=30000, fps_base=1001)
    s = scene.facecast
    props = s.bl_rna.properties
    result["emotion_props"] = [n for n in EMOTIONS if n in props]
    result["animatable"] = [n for n in (*EMOTIONS, "intensity") if props[n].is_animatable]
    result["emotion_tooltips"] = [props[n].description for n in EMOTIONS]

    key_two_emotions(scene)
    result["happy_curve"] = fcurve_values(scene, "facecast.happy", [1, 20, 30, 45, 60])
    result["angry_curve"] = fcurve_values(scene, "facecast.angry", [1, 50, 60])

    # Sampling at NTSC 29.97: the 60 s line covers ceil(60 * 30000 / 1001) frames.
    audio = scene_inputs.audio_input(scene)
    pcm = pkg.core.audio_io.load_pcm(audio.path)
    fps = animate_job.scene_fps(scene.render.fps, scene.render.fps_base)
    span = animate_job.audio_span(audio.start_frame, pcm.size / 16000, fps, audio.visible)
    result["pcm_samples"] = int(pcm.size)
    result["fps"] = float(fps)
    if audio.strip:
        strip = pkg.compat.sequencer_strips(scene)[audio.strip]
        result["strip_frames"] = [int(strip.frame_final_start), int(strip.frame_final_end)]
    result["span"] = [span.first, span.count]
    w, i = scene_inputs.sample_emotions(scene, span.frames())
    result["weights_shape"] = list(w.shape)
    result["intensity_shape"] = list(i.shape)
    result["sampled_happy_30"] = float(w[29, EMOTIONS.index("happy")])
    result["sampled_neutral"] = float(w[0, EMOTIONS.index("neutral")])
    result["frame_after_sampling"] = scene.frame_current

    # The panel draws (through the real draw code) without raising.
    class _L:
        def __getattr__(self, name):
            return lambda *a, **k: self

        def __setattr__(self, name, value):
            pass

    s.dialogue_text = TEXT
    pkg.ui.panel.draw_panel(_L(), bpy.context)
    result["panel_draw_ok"] = True
    result["dialogue"] = scene_inputs.dialogue(s)
    txt = bpy.data.texts.new("line")
    txt.write("  " + TEXT2 + "\n")
    s.dialogue_text_block = txt
    result["dialogue_block"] = scene_inputs.dialogue(s)
    s.dialogue_text_block = None

    # A rig with missing / renamed shape keys: a mapping report, not a crash.
    keys = face.data.shape_keys.key_blocks
    face.shape_key_remove(keys["jawOpen"])
    face.shape_key_remove(keys["mouthSmileLeft"])
    keys["mouthSmileRight"].name = "Smile_R"
    result["check_mapping"] = sorted(bpy.ops.facecast.check_mapping())
    result["mapping_report"] = s.mapping_report
    ov = s.mapping_overrides.add()
    ov.arkit, ov.target_name = "jawOpen", "does-not-exist"
    result["bad_override"] = call_op(bpy.ops.facecast.check_mapping)
    result["bad_override_error"] = s.last_error
    s.mapping_overrides.clear()

    # A bone rig: its pose actions are the targets.
    rig, _body = build_bone_rig(scene)
    s.target = rig
    result["rig_check"] = sorted(bpy.ops.facecast.check_mapping())
    result["rig_report"] = s.mapping_report
    ov = s.mapping_overrides.add()
    ov.arkit, ov.target_name = "mouthSmileLeft+mouthSmileRigth", "Smile"
    result["bad_group"] = call_op(bpy.ops.facecast.check_mapping)
    result["bad_group_error"] = s.last_error
    ov.arkit, ov.target_name = "jawOpen*0.5+mouthFunnel*0.5", "Wave"
    call_op(bpy.ops.facecast.check_mapping)
    result["group_override_report"] = s.mapping_report
    result["bake_without_takes"] = call_op(bpy.ops.facecast.bake_takes)
    result["bake_without_takes_error"] = s.last_error
    s.render_source = "RIG"
    try:
        scene_inputs.render_inputs(scene, None)
    except pkg.shared.errors.FacecastError as exc:
        result["rig_render_error"] = exc.message

    # Online access: a remote host is refused while Blender's online access is off.
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_address = "tcp://10.1.2.3:5557"
    result["online_access"] = bpy.app.online_access
    result["remote_connect"] = call_op(bpy.ops.facecast.connect)
    result["remote_error"] = s.last_error
    result["busy_after_refusal"] = job_session.SESSION.busy


def scenario_takes(pkg):
    """Takes on the NLA for a shape-key face and a bone rig, with the test backend's
    deterministic weights; dialogue text to a backend that declares it; bake."""
    from bl_ext.user_default.facecast import compat

    scene, face = build_scene()
    s = scene.facecast
    scene.frame_start, scene.frame_end = 1, 48
    s.scene_range_only = True
    key_two_emotions(scene)
    keys = face.data.shape_keys
    own = bpy.data.actions.new("AnimatorWork")  # the animator's keys: browInnerUp at 0.77
    fc = compat.fcurves_for(own, keys).new('key_blocks["browInnerUp"].value', index=0)
    fc.keyframe_points.insert(1, 0.77)
    fc.keyframe_points.insert(48, 0.77)
    compat.assign_action(keys, own)
    own_before = fcurve_snapshot(own)
    js = start_backend(cfg["doubles"])

    s.dialogue_text = TEXT
    status, error, run = animate(js)
    result["take1_status"], result["take1_error"] = status, error
    received = run.task.done_body.get("received", {})
    result["take1_params"] = {k: v for k, v in received.get("params", {}).items()}
    result["take1_arrays"] = received.get("arrays")
    result["take1_text_sent"] = run.text_sent
    frames = list(range(1, 49))
    names = ("jawOpen", "mouthSmileLeft", "browInnerUp")
    blocks = keys.key_blocks
    result["take1_values"] = evaluated(scene, frames,
                                       lambda: [float(blocks[n].value) for n in names])
    result["after_take1"] = takes_info(keys)

    s.dialogue_text = ""
    txt = bpy.data.texts.new("line")
    txt.write(TEXT2)
    s.dialogue_text_block = txt
    s.seed = 1
    status, error, run = animate(js)
    result["take2_status"], result["take2_error"] = status, error
    result["take2_text"] = run.task.done_body["received"]["params"].get("text")
    result["take2_seed"] = run.task.done_body["received"]["params"].get("seed")
    result["after_take2"] = takes_info(keys)
    result["own_untouched"] = fcurve_snapshot(own) == own_before
    result["take2_values"] = evaluated(scene, [1, 2, 3],
                                       lambda: [float(blocks[n].value) for n in names])

    # Undo goes back to take 1 (an undo step follows every write); redo brings take 2.
    face_name = face.name
    bpy.ops.ed.undo()
    keys = bpy.data.objects[face_name].data.shape_keys
    result["after_undo"] = takes_info(keys)
    bpy.ops.ed.redo()
    face = bpy.data.objects[face_name]
    keys, scene = face.data.shape_keys, bpy.context.scene
    s = scene.facecast
    result["after_redo"] = takes_info(keys)

    # The bone rig: blended poses as a new action, a take on the rig's NLA.
    rig, body = build_bone_rig(scene)
    s.target = rig
    s.dialogue_text_block = None
    poses_before = {n: fcurve_snapshot(bpy.data.actions[n]) for n in POSES}
    head_before = fcurve_snapshot(bpy.data.actions["AnimatorHead"])
    status, error, run = animate(js)
    result["rig_status"], result["rig_error"] = status, error
    result["rig_takes"] = takes_info(rig)
    mapping = pkg.scene_inputs.face_mapping(rig, {})
    weights = mapping.target_weights(run.task.blendshapes())
    result["rig_targets"] = sorted(weights)
    got = evaluated(scene, frames, lambda: bone_readings(rig))
    errors = [reading_error(got[i], pose_expectation(weights, i)) for i in range(len(frames))]
    result["rig_max_error"] = max(errors)
    result["jaw_angles"] = [2 * math.acos(min(1.0, abs(g["jaw"].w))) for g in got]
    result["jaw_weights"] = [float(v) for v in weights["jawOpen"]]
    # The mesh follows: its lowest vertex, seen from the head bone (which the animator's
    # own action turns), moves with the jaw.
    deps = bpy.context.evaluated_depsgraph_get()

    def lowest_z():
        ev = body.evaluated_get(deps)
        to_head = (rig.matrix_world @ rig.pose.bones["head"].matrix).inverted() @ \
            body.matrix_world
        return min((to_head @ v.co).z for v in ev.data.vertices)

    result["mesh_low_z"] = evaluated(scene, frames, lowest_z)
    result["poses_untouched"] = all(fcurve_snapshot(bpy.data.actions[n]) == before
                                    for n, before in poses_before.items())
    result["animator_head_untouched"] = fcurve_snapshot(
        bpy.data.actions["AnimatorHead"]) == head_before
    head_pb = rig.pose.bones["head"]
    result["head_layer_on_top"] = evaluated(scene, [1, 40],
                                            lambda: float(head_pb.rotation_quaternion[3]))

    # Bake to one action: what plays now, frame by frame, as the active action.
    before_bake = evaluated(scene, frames, lambda: bone_readings(rig))
    result["bake"] = call_op(bpy.ops.facecast.bake_takes)
    result["bake_status"] = s.status
    baked = rig.animation_data.action
    result["after_bake"] = takes_info(rig)
    result["baked_props"] = {k: str(baked[k]) for k in ("facecast_baked",
                                                         "facecast_replaced_action")}
    result["replaced_kept"] = bpy.data.actions["AnimatorHead"].use_fake_user
    after_bake = evaluated(scene, frames, lambda: bone_readings(rig))
    result["bake_max_change"] = max(reading_error(a, {k: v for k, v in b.items()})
                                    for a, b in zip(after_bake, before_bake, strict=False))


def scenario_render(pkg):
    """Render to sequencer through the test backend: PNG + depth files, strip, reuse."""
    from bl_ext.user_default.facecast import compat

    scene, face = build_scene()
    s = scene.facecast
    scene.frame_start, scene.frame_end = 1, 48
    s.scene_range_only = True
    js = start_backend(cfg["doubles"])
    s.dialogue_text = TEXT
    result["panel_lines"] = draw_panel_lines(pkg)
    status, error, run = animate(js)
    result["animate_status"], result["animate_error"] = status, error
    received = run.task.done_body.get("received", {})
    result["animate_received"] = received.get("params", {})
    s.subject = "anyone"
    s.render_source = "RIG"
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    js.drive(60.0)
    run = js.SESSION.run
    result["render_status"], result["render_error"] = s.status, s.last_error
    result["received"] = run.task.done_body.get("received") if hasattr(
        run.task, "done_body") else None
    folder = str(run.task.folder)
    result["folder"] = folder
    files = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    result["files"] = files
    result["depth_files"] = sorted(os.listdir(os.path.join(folder, "depth")))
    result["tmp_files"] = [f for f in os.listdir(folder) if f.endswith(".tmp")]
    strips = compat.sequencer_strips(scene)
    img = [st for st in strips if st.type == "IMAGE"]
    result["image_strips"] = [[st.name, st.channel, int(st.frame_final_start),
                               int(st.frame_final_end), st.blend_type, len(st.elements)]
                              for st in img]
    result["sound_channel"] = sound_channel(scene)
    im = bpy.data.images.load(os.path.join(folder, files[0]))
    result["png_size"] = list(im.size)
    result["png_channels"] = im.channels
    # The depth as the compositor reads it: Non-Color, metres.
    depth = bpy.data.images.load(os.path.join(folder, "depth", "000003.exr"))
    depth.colorspace_settings.name = "Non-Color"
    px = np.empty(len(depth.pixels), np.float32)
    depth.pixels.foreach_get(px)
    w, h = depth.size
    grey = px.reshape(h, w, depth.channels)[::-1, :, 0]  # Blender stores rows bottom-up
    result["depth_loaded_m"] = grey.tolist()
    # The conditioning the backend got = the face as it plays (take on the NLA).
    keys = face.data.shape_keys
    names = ("jawOpen", "mouthSmileLeft")
    result["played"] = evaluated(scene, list(range(1, 49)),
                                 lambda: [float(keys.key_blocks[n].value) for n in names])
    mtimes = {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in files}

    # Again: same conditioning -> same folder, nothing re-rendered, strip refreshed.
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    js.drive(30.0)
    run2 = js.SESSION.run
    result["rerender_submitted"] = run2.submitted
    result["rerender_status"] = s.status
    result["rerender_same_folder"] = str(run2.task.folder) == folder
    result["rerender_untouched"] = all(
        os.stat(os.path.join(folder, f)).st_mtime_ns == m for f, m in mtimes.items())
    result["strips_after_rerender"] = len([st for st in compat.sequencer_strips(scene)
                                           if st.type == "IMAGE"])

    # The animator keys jawOpen on top of the take: new conditioning -> a new folder.
    own = bpy.data.actions.new("AnimatorFix")
    fc = compat.fcurves_for(own, keys).new('key_blocks["jawOpen"].value', index=0)
    fc.keyframe_points.insert(5, 0.9)
    compat.assign_action(keys, own)
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    js.drive(60.0)
    result["edited_new_folder"] = str(js.SESSION.run.task.folder) != folder
    result["edited_error"] = s.last_error
    js.shutdown()
    result["backend_after_shutdown"] = js.backend_status()[0]


def scenario_kill(pkg):
    """The backend dies mid-render: a clear error in the panel, received frames kept."""
    scene, _face = build_scene()
    js = start_backend(cfg["doubles"])
    s = scene.facecast
    scene.frame_start, scene.frame_end = 1, 60
    s.subject = "anyone"
    # Cancel mid-stream: the backend stops, the frames so far stay, the strip shows them.
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    task = js.SESSION.run.task
    js.drive(60.0, until=lambda: len(task.written) >= 5)
    result["cancel_poll"] = bpy.ops.facecast.cancel.poll()
    assert bpy.ops.facecast.cancel() == {"FINISHED"}
    js.drive(30.0)
    result["cancelled"] = [task.state, s.status, s.last_error, len(task.written),
                           s.progress]
    # Cancel before the job was even sent: nothing reaches the backend.
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    queued = js.SESSION.run
    assert bpy.ops.facecast.cancel() == {"FINISHED"}
    js.drive(10.0)
    result["cancelled_queued"] = [queued.task.state, queued.submitted, s.status]
    # Render again: the kept frames are reused; then the backend dies mid-stream.
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    task = js.SESSION.run.task
    result["reused_after_cancel"] = len(task.written)
    js.drive(60.0, until=lambda: len(task.written) >= 10 + result["reused_after_cancel"])
    js.SESSION.backend.local.kill()
    result["killed_after"] = len(task.written)
    t0 = time.monotonic()
    js.drive(30.0)
    result["error_after_s"] = round(time.monotonic() - t0, 2)
    result["state"] = task.state
    result["status"] = s.status
    result["last_error"] = s.last_error
    folder = str(task.folder)
    files = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    result["files"] = len(files)
    result["written"] = len(task.written)
    strips = [st for st in pkg.compat.sequencer_strips(scene) if st.type == "IMAGE"]
    result["strip"] = [[st.channel, int(st.frame_final_start), int(st.frame_final_end),
                        len(st.elements)] for st in strips]
    result["backend_status"] = list(js.backend_status())


def scenario_animate_real(pkg):
    """The real animate job on a shape-key face and on a bone rig: lips move with the
    speech, emotions show, two deliveries are two takes, and dialogue text is refused
    politely by a backend that cannot align it."""
    scene, face = build_scene()
    s = scene.facecast
    scene.frame_start, scene.frame_end = 1, 288
    s.scene_range_only = True
    key_two_emotions(scene)
    js = start_backend(cfg["python"])
    s.dialogue_text = TEXT
    result["panel_lines"] = draw_panel_lines(pkg)
    status, error, run = animate(js, 300.0)
    result["face_status"], result["face_error"] = status, error
    result["text_sent"] = run.text_sent
    result["sent_params"] = sorted(pkg.core.animate_job.submission(run.task.request,
                                                                   run.text_sent)[0])
    frames = list(range(1, 289))
    keys = face.data.shape_keys
    result["face_jaw"] = evaluated(scene, frames,
                                   lambda: float(keys.key_blocks["jawOpen"].value))
    result["face_smile"] = evaluated(
        scene, frames, lambda: 0.5 * float(keys.key_blocks["mouthSmileLeft"].value
                                           + keys.key_blocks["mouthSmileRight"].value))

    rig, _body = build_bone_rig(scene)
    s.target = rig
    status, error, run = animate(js, 300.0)  # the same dialogue: the same performance
    result["rig_status"], result["rig_error"] = status, error
    pb = rig.pose.bones
    result["rig_jaw_angle"] = evaluated(
        scene, frames, lambda: 2 * math.acos(min(1.0, abs(pb["jaw"].rotation_quaternion.w))))
    result["rig_smile_z"] = evaluated(scene, frames,
                                      lambda: float(pb["lip_corner.L"].location.z))

    # A different emotion: a second take; the first stays on the NLA.
    key_two_emotions(scene, second="sad")
    for frame in (20, 40):
        scene.frame_set(frame)
        s.happy = 0.0
        assert bpy.ops.facecast.key_emotion() == {"FINISHED"}
    scene.frame_set(1)
    s.dialogue_text = ""  # no dialogue: the backend's recogniser writes one
    status, error, run = animate(js, 300.0)
    result["rig_take2_status"], result["rig_take2_error"] = status, error
    result["heard_text"] = s.dialogue_text  # the words heard fill the empty field
    result["rig_takes"] = takes_info(rig)
    result["rig_take2_smile_z"] = evaluated(scene, frames,
                                            lambda: float(pb["lip_corner.L"].location.z))
    js.shutdown()


def scenario_render_real(pkg):
    """The real render job on the shipped demo subject: RGBA + depth into a VSE strip;
    the depth PNG holds exactly the millimetres the backend sent."""
    scene, face = build_scene()
    scene.frame_start, scene.frame_end = 1, 4
    cam = scene.camera
    cam.location = (0.0, -0.75, 0.0)
    keys = face.data.shape_keys
    jaw = keys.key_blocks["jawOpen"]
    for frame, value in ((1, 0.0), (4, 1.0)):
        jaw.value = value
        jaw.keyframe_insert("value", frame=frame)
    js = start_backend(cfg["python"])
    s = scene.facecast
    s.subject = "default"
    s.render_source = "RIG"
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    task = js.SESSION.run.task
    received = {}
    handle = task.on_event

    def record(event):  # the test listens in on what the backend sent
        if event.kind == "frame" and len(event.arrays) > 1:
            received[task.frame_number(event.body["index"])] = np.array(event.arrays[1]).tolist()
            result["depth_dtype"] = str(np.asarray(event.arrays[1]).dtype)
        handle(event)

    task.on_event = record
    t0 = time.monotonic()
    js.drive(300.0)
    result["render_s"] = round(time.monotonic() - t0, 2)
    result["panel_lines"] = draw_panel_lines(pkg)
    result["status"], result["last_error"] = s.status, s.last_error
    folder = str(task.folder)
    result["folder"] = folder
    files = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    result["files"] = files
    result["backend_depth"] = {str(k): v for k, v in received.items()}
    strips = [st for st in pkg.compat.sequencer_strips(scene) if st.type == "IMAGE"]
    result["strip"] = [[st.channel, int(st.frame_final_start), int(st.frame_final_end),
                        st.blend_type, len(st.elements)] for st in strips]
    result["sound_channel"] = sound_channel(scene)
    im = bpy.data.images.load(os.path.join(folder, files[0]))
    px = np.empty(len(im.pixels), np.float32)
    im.pixels.foreach_get(px)
    result["png_size"], result["png_channels"] = list(im.size), im.channels
    result["alpha_mean"] = float(px[3::4].mean())
    result["alpha_max"] = float(px[3::4].max())
    js.shutdown()


def scenario_autostart(pkg):
    """Animate with no backend running and "Start a Local Backend" on: the add-on starts
    the local backend itself, says so, and sends the job once it is ready; a second
    Animate reuses it. With the preference off: the clear error, nothing started."""
    from bl_ext.user_default.facecast import job_session as js

    scene, face = build_scene()
    s = scene.facecast
    scene.frame_start, scene.frame_end = 1, 48
    s.scene_range_only = True
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_executable = cfg["doubles"]
    result["default_pref"] = prefs.start_local_backend
    prefs.start_local_backend = True
    result["state_before"] = js.backend_status()[0]
    assert bpy.ops.facecast.animate() == {"FINISHED"}, s.last_error
    run = js.SESSION.run
    result["started"] = [run.started_backend, js.SESSION.backend.local.state]
    result["status_at_start"] = s.status
    result["panel_at_start"] = draw_panel_lines(pkg)
    js.step()
    result["status_while_starting"] = s.status
    js.drive(120.0)
    result["take1"] = [run.task.state, s.status, s.last_error]
    result["take1_frames"] = run.task.done_body.get("n_frames")
    result["backend_after"] = js.backend_status()[0]
    pid = js.SESSION.backend.local.proc.pid
    assert bpy.ops.facecast.animate() == {"FINISHED"}, s.last_error
    run = js.SESSION.run
    js.drive(60.0)
    result["take2"] = [run.started_backend, run.task.state, s.status, s.last_error,
                       js.SESSION.backend.local.proc.pid == pid]
    result["takes"] = [t[1] for t in takes_info(face.data.shape_keys)["takes"]]

    # The preference off: nothing is started, the job ends with the clear error.
    assert bpy.ops.facecast.stop_backend() == {"FINISHED"}
    prefs.start_local_backend = False
    assert bpy.ops.facecast.animate() == {"FINISHED"}, s.last_error
    run = js.SESSION.run
    js.drive(60.0)
    result["off"] = [run.started_backend, run.submitted, run.task.state, s.status,
                     s.last_error, js.SESSION.backend.local.proc is None]

    # On again, with an executable that dies at once: the job ends with the reason.
    broken = os.path.join(os.path.dirname(cfg["doubles"]), "facecast-broken")
    with open(broken, "w", encoding="utf-8") as fh:
        fh.write("#!/bin/sh\necho 'facecast: error: broken install' >&2\nexit 3\n")
    os.chmod(broken, 0o755)
    prefs.backend_executable = broken
    prefs.start_local_backend = True
    assert bpy.ops.facecast.animate() == {"FINISHED"}, s.last_error
    run = js.SESSION.run
    js.drive(60.0)
    result["broken"] = [run.started_backend, run.submitted, run.task.state, s.last_error]


def scenario_stall(pkg):
    """Render to sequencer (the backend started by the job itself) whose compute hangs
    after 3 frames while the server keeps sending heartbeats: the panel says it is stalled
    after Job Timeout, the job stays (Cancel works), and progress resuming clears it."""
    from bl_ext.user_default.facecast import job_session as js

    scene, _face = build_scene()
    s = scene.facecast
    scene.frame_start, scene.frame_end = 1, 8
    s.subject = "anyone"
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_executable = cfg["doubles"]
    prefs.start_local_backend = True
    prefs.job_timeout = 1.0
    release = cfg["hold_file"]
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    run = js.SESSION.run
    task = run.task
    result["started"] = run.started_backend
    js.drive(60.0, until=lambda: js.stall_note() != "")
    now = time.monotonic()
    result["stalled"] = [task.state, js.SESSION.busy, len(task.written),
                         js.SESSION.backend.link.state, run.stall.idle_s(now),
                         bpy.ops.facecast.cancel.poll()]
    result["stalled_note"] = js.stall_note()
    result["stalled_panel"] = draw_panel_lines(pkg)
    open(release, "w").close()  # the compute comes back
    js.drive(60.0, until=lambda: len(task.written) > 3)
    result["resumed"] = [js.stall_note(), run.stall.stalled, task.state]
    js.drive(120.0)
    result["finished"] = [task.state, len(task.written), s.status, s.last_error,
                          js.stall_note()]

    # Stuck again, and the animator cancels: the frames so far stay.
    os.remove(release)
    scene.frame_end = 12  # new frames: a new render, which hangs after its 3rd frame
    s.subject = "someone"
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    run = js.SESSION.run
    task = run.task
    result["second_started"] = run.started_backend
    js.drive(60.0, until=lambda: js.stall_note() != "")
    result["second_stalled"] = [task.state, len(task.written)]
    assert bpy.ops.facecast.cancel() == {"FINISHED"}
    js.drive(60.0)
    result["cancelled"] = [task.state, len(task.written), s.status, s.last_error,
                           js.stall_note(), js.SESSION.busy]


SCENARIOS = {"ui": scenario_ui, "takes": scenario_takes, "render": scenario_render,
             "kill": scenario_kill, "animate_real": scenario_animate_real,
             "render_real": scenario_render_real, "autostart": scenario_autostart,
             "stall": scenario_stall}
# The hybrid-shot scenarios live beside this script and use its helpers.
import hybrid_scenarios  # noqa: E402

for _name, _fn in hybrid_scenarios.scenarios().items():
    SCENARIOS[_name] = (lambda fn: lambda pkg: fn(pkg, sys.modules[__name__]))(_fn)

try:
    package = setup_addon()
    SCENARIOS[SCENARIO](package)
except Exception:
    result["error"] = traceback.format_exc()
finally:
    try:
        from bl_ext.user_default.facecast import job_session as _js

        _js.shutdown()
    except Exception:
        pass

with open(OUT, "w", encoding="utf-8") as fh:
    json.dump(result, fh, default=str)
