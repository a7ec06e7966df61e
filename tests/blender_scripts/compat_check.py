"""Run inside a fresh bpy process: exercise the add-on's compat helpers for real.

Usage: python compat_check.py ZIP WORKDIR OUT_JSON. Installs the built zip (so the code
under test is exactly what ships), then writes F-curves into a new action, reads them
back, and adds sequencer strips. Results go to OUT_JSON.
"""

import json
import math
import os
import struct
import sys
import traceback
import wave

import bpy
import numpy as np

ZIP, WORK, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
result: dict = {"blender": bpy.app.version_string}

try:
    bpy.ops.extensions.package_install_files(
        filepath=ZIP, repo="user_default", enable_on_install=True
    )
    from bl_ext.user_default.facecast import compat

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.facecast.create_demo_rig()
    obj = bpy.context.view_layer.objects.active
    key = obj.data.shape_keys
    result["slotted"] = compat.has_slotted_actions()

    # An animator's existing action must survive our new one.
    old = bpy.data.actions.new("AnimatorWork")
    compat.fcurves_for(old, key).new('key_blocks["browInnerUp"].value', index=0)
    compat.assign_action(key, old)

    frames = np.arange(1, 101, dtype=np.float32)
    values = (0.5 + 0.5 * np.sin(frames / 7.0)).astype(np.float32)
    action = bpy.data.actions.new("FacecastTest")
    fcurves = compat.fcurves_for(action, key)
    path = 'key_blocks["jawOpen"].value'
    fc = compat.write_fcurve(fcurves, path, frames, values, group="Facecast")
    previous = compat.assign_action(key, action)
    result["previous_kept"] = previous is not None and previous.name == "AnimatorWork"
    result["previous_fake_user"] = bool(old.use_fake_user)

    co = np.empty(200, dtype=np.float32)
    fc.keyframe_points.foreach_get("co", co)
    result["n_keys"] = len(fc.keyframe_points)
    result["frames_ok"] = bool(np.allclose(co[0::2], frames))
    result["values_ok"] = bool(np.allclose(co[1::2], values, atol=1e-6))
    result["interp"] = sorted({k.interpolation for k in fc.keyframe_points})
    result["group"] = fc.group.name if fc.group else None
    mid = float(fc.evaluate(10.5))
    result["linear_mid_ok"] = bool(abs(mid - 0.5 * (values[9] + values[10])) < 1e-5)

    # The key really plays: evaluate the scene at some frames.
    got = []
    for f in (1, 37, 100):
        bpy.context.scene.frame_set(f)
        got.append(key.key_blocks["jawOpen"].value)
    result["playback_ok"] = bool(np.allclose(got, values[[0, 36, 99]], atol=1e-5))

    # Existing keys are never overwritten silently.
    try:
        compat.write_fcurve(fcurves, path, frames, values)
        result["refused_overwrite"] = False
    except ValueError:
        result["refused_overwrite"] = True
    compat.write_fcurve(fcurves, path, frames[:10], values[:10], replace=True)
    result["replaced_n"] = len(fc.keyframe_points)

    # NLA: a second action as a strip on a new track; the active action stays and plays
    # on top of it (it keys jawOpen; the strip keys mouthClose).
    take = bpy.data.actions.new("TakeTest")
    take_curves = compat.fcurves_for(take, key)
    compat.write_fcurve(take_curves, 'key_blocks["mouthClose"].value', frames,
                        1.0 - values, group="Facecast")
    track, strip = compat.push_nla_strip(key, take, "Facecast Take 1", "Take 1", 1)
    result["nla"] = [track.name, strip.name, strip.action.name, strip.frame_start,
                     strip.frame_end, key.animation_data.action.name]
    if hasattr(strip, "action_slot"):
        result["strip_slot_type"] = strip.action_slot.target_id_type
    got = []
    for f in (1, 37, 100):
        bpy.context.scene.frame_set(f)
        got.append([key.key_blocks["jawOpen"].value, key.key_blocks["mouthClose"].value])
    want = np.stack([[fc.evaluate(f) for f in (1, 37, 100)], 1.0 - values[[0, 36, 99]]],
                    axis=1)
    result["nla_playback_ok"] = bool(np.allclose(got, want, atol=1e-5))
    result["action_fcurves"] = sorted(fc.data_path for fc in compat.action_fcurves(take))
    result["action_fcurves_other_type"] = len(compat.action_fcurves(take, "OBJECT"))

    if result["slotted"]:
        anim = key.animation_data
        result["n_slots"] = len(action.slots)
        result["slot_type"] = action.slots[0].target_id_type
        result["slot_assigned"] = anim.action_slot == action.slots[0]
        result["has_legacy_fcurves"] = hasattr(action, "fcurves")

    # Sequencer wrappers on real media.
    wav = os.path.join(WORK, "tone.wav")
    with wave.open(wav, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(
            b"".join(struct.pack("<h", int(8000 * math.sin(i / 10.0))) for i in range(16000))
        )
    img = bpy.data.images.new("frame", 8, 8)
    png = os.path.join(WORK, "frame_0001.png")
    img.filepath_raw = png
    img.file_format = "PNG"
    img.save()

    scene = compat.sequencer_scene(bpy.context)
    result["seq_scene_is_scene"] = scene == bpy.context.scene
    ims = compat.new_image_strip(scene, "frames", png, channel=2, frame_start=1)
    types = [ims.type]
    try:
        types.append(compat.new_sound_strip(scene, "voice", wav, channel=1,
                                            frame_start=1).type)
    except RuntimeError as exc:  # the PyPI 4.2 module is built without Audaspace
        if "Audaspace" not in str(exc):
            raise
        result["no_audaspace"] = True
    result["strips"] = sorted(s.name for s in compat.sequencer_strips(scene))
    result["strips_all"] = sorted(s.name for s in compat.sequencer_strips_all(scene))
    result["strip_types"] = sorted(types)
except Exception:
    result["error"] = traceback.format_exc()

with open(OUT, "w", encoding="utf-8") as fh:
    json.dump(result, fh)
