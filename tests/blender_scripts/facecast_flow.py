"""Run inside a fresh bpy process: drive the Facecast panel's workflows for real.

Usage: python facecast_flow.py ZIP SCENARIO CONFIG_JSON OUT_JSON

Installs the built zip, builds a scene (demo rig + a sound strip of real speech), then
runs SCENARIO, stepping ``runtime.step()`` in a loop exactly as Blender's timer would
(the PyPI bpy module never fires timers). A real backend is started by the add-on's own
"Start Backend" operator from CONFIG's Python. Results go to OUT_JSON.
"""

import json
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


def setup_addon():
    bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default",
                                             enable_on_install=True)
    import importlib

    pkg = importlib.import_module(MODULE)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_address = cfg.get("address", "tcp://127.0.0.1:5557")
    prefs.key_file = cfg.get("key_file", "")
    prefs.backend_executable = cfg.get("python", "")
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
        from bl_ext.user_default.facecast import compat

        strip = compat.new_sound_strip(scene, "voice", cfg["wav"], channel=1, frame_start=1)
        s.audio_source = "STRIP"
        s.sound_strip = strip.name
    return scene, face


def start_backend(pkg):
    from bl_ext.user_default.facecast import runtime

    assert bpy.ops.facecast.start_backend() == {"FINISHED"}
    t0 = time.monotonic()
    runtime.drive(90.0, until=lambda: runtime.SESSION.link.state == "ready")
    result["backend_ready_s"] = round(time.monotonic() - t0, 2)
    result["backend_state"] = runtime.backend_status()[0]
    result["backend_jobs"] = sorted(runtime.SESSION.link.server.get("jobs", {}))
    return runtime


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


def key_two_emotions(scene):
    s = scene.facecast
    for frame, happy, angry in ((1, 0.0, 0.0), (10, 0.0, 0.0), (20, 1.0, 0.0), (40, 1.0, 0.0),
                                (50, 0.0, 0.0), (60, 0.0, 0.8)):
        scene.frame_set(frame)
        s.happy, s.angry = happy, angry
        assert bpy.ops.facecast.key_emotion() == {"FINISHED"}
    scene.frame_set(1)


# ------------------------------------------------------------------------------------------


def scenario_ui(pkg):
    from bl_ext.user_default.facecast import generate_job, runtime, scene_io
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

    key_two_emotions(scene)
    happy_fc = scene.animation_data.action is not None and \
        fcurve_values(scene, "facecast.happy", [1, 20, 30, 45, 60])
    result["happy_curve"] = happy_fc
    result["angry_curve"] = fcurve_values(scene, "facecast.angry", [1, 50, 60])

    # Sampling at NTSC 29.97: the 60 s line covers ceil(60 * 30000 / 1001) frames.
    path, start, visible, strip = runtime.audio_input(scene)
    pcm = pkg.audio_io.load_pcm(path)
    fps = generate_job.scene_fps(scene.render.fps, scene.render.fps_base)
    span = generate_job.audio_span(start, pcm.size / 16000, fps, visible)
    result["pcm_samples"] = int(pcm.size)
    result["fps"] = fps
    result["strip_frames"] = [int(strip.frame_final_start), int(strip.frame_final_end)]
    result["span"] = [span.first, span.count]
    w, i = scene_io.sample_emotions(scene, span.frames())
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

    pkg.facecast_panel.draw_panel(_L(), bpy.context)
    result["panel_draw_ok"] = True

    # A rig with missing / renamed shape keys: a mapping report, not a crash.
    keys = face.data.shape_keys.key_blocks
    face.shape_key_remove(keys["jawOpen"])
    face.shape_key_remove(keys["mouthSmileLeft"])
    keys["mouthSmileRight"].name = "Smile_R"
    result["check_mapping"] = sorted(bpy.ops.facecast.check_mapping())
    result["mapping_report"] = s.mapping_report
    ov = s.mapping_overrides.add()
    ov.arkit, ov.shape_key = "jawOpen", "does-not-exist"
    result["bad_override"] = call_op(bpy.ops.facecast.check_mapping)
    result["bad_override_error"] = s.last_error

    # Online access: a remote host is refused while Blender's online access is off.
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_address = "tcp://10.1.2.3:5557"
    result["online_access"] = bpy.app.online_access
    result["remote_connect"] = call_op(bpy.ops.facecast.connect)
    result["remote_error"] = s.last_error


def scenario_plumbing(pkg):
    """Generate and render through a real backend, with stream_test standing in."""
    scene, face = build_scene()
    runtime = start_backend(pkg)
    s = scene.facecast
    scene.frame_start, scene.frame_end = 1, 48
    s.scene_range_only = True
    key_two_emotions(scene)
    keys = face.data.shape_keys
    old = bpy.data.actions.new("AnimatorWork")
    pkg.compat.fcurves_for(old, keys).new('key_blocks["browInnerUp"].value', index=0)
    pkg.compat.assign_action(keys, old)

    def fake_animate(params, arrays):
        result["animate_params"] = {k: v for k, v in params.items() if k != "emotions"}
        result["animate_arrays"] = [[str(a.dtype), list(a.shape)] for a in arrays]
        return ("stream_test", {"n_frames": params["n_frames"], "shape": [1, 52],
                                "dtype": "float32"}, [])

    runtime.SESSION.job_overrides["animate"] = fake_animate
    assert bpy.ops.facecast.generate() == {"FINISHED"}, s.last_error
    t0 = time.monotonic()
    runtime.drive(60.0)
    result["generate_s"] = round(time.monotonic() - t0, 2)
    result["generate_status"] = s.status
    result["generate_error"] = s.last_error
    result["action"] = keys.animation_data.action.name
    result["old_kept"] = bpy.data.actions.get("AnimatorWork") is not None
    jaw = fcurve_values(keys, 'key_blocks["jawOpen"].value', [1, 2, 3, 48])
    result["jaw_values"] = jaw
    from bl_ext.user_default.facecast import compat

    curves = compat.assigned_fcurves(keys)
    result["n_curves"] = len(curves)
    result["n_keys"] = sorted({len(fc.keyframe_points) for fc in curves})

    # Render with stream_test frames standing in for the NeRF.
    def fake_render(params, arrays):
        result.setdefault("render_params", []).append(
            {k: params[k] for k in ("frames", "first_frame", "n_frames", "array_names",
                                    "subject")})
        result.setdefault("render_arrays", []).append([list(a.shape) for a in arrays])
        return ("stream_test", {"n_frames": params["n_frames"], "shape": [48, 64, 4]}, [])

    runtime.SESSION.job_overrides["render"] = fake_render
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    runtime.drive(60.0)
    result["render_status"] = s.status
    result["render_error"] = s.last_error
    folder = runtime.SESSION.ctx["folder"]
    result["folder"] = folder
    files = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    result["files"] = files
    result["tmp_files"] = [f for f in os.listdir(folder) if f.endswith(".tmp")]
    strips = pkg.compat.sequencer_strips(scene)
    img = [st for st in strips if st.type == "IMAGE"]
    result["image_strips"] = [[st.name, st.channel, int(st.frame_final_start),
                               int(st.frame_final_end), st.blend_type, len(st.elements)]
                              for st in img]
    result["sound_channel"] = strips["voice"].channel
    first_png = os.path.join(folder, files[0])
    im = bpy.data.images.load(first_png)
    result["png_size"] = list(im.size)
    result["png_channels"] = im.channels
    px = np.empty(len(im.pixels), np.float32)
    im.pixels.foreach_get(px)
    result["png_alpha"] = float(px[3::4].mean())
    mtimes = {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in files}

    # Again: same conditioning -> same folder, nothing re-rendered, strip refreshed.
    n_calls = len(result["render_params"])
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    runtime.drive(30.0)
    result["rerender_calls"] = len(result["render_params"]) - n_calls
    result["rerender_status"] = s.status
    result["rerender_same_folder"] = runtime.SESSION.ctx["folder"] == folder
    result["rerender_untouched"] = all(
        os.stat(os.path.join(folder, f)).st_mtime_ns == m for f, m in mtimes.items())
    result["strips_after_rerender"] = len([st for st in pkg.compat.sequencer_strips(scene)
                                           if st.type == "IMAGE"])

    # An edited shape key changes the conditioning -> a new folder.
    fc = compat.find_assigned_fcurve(keys, 'key_blocks["jawOpen"].value')
    fc.keyframe_points[5].co.y = 0.9
    fc.update()
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    runtime.drive(60.0)
    result["edited_new_folder"] = runtime.SESSION.ctx["folder"] != folder
    runtime.shutdown()
    result["backend_after_shutdown"] = runtime.backend_status()[0]


def scenario_kill(pkg):
    """The backend dies mid-render: a clear error in the panel, received frames kept."""
    scene, _face = build_scene()
    runtime = start_backend(pkg)
    s = scene.facecast
    scene.frame_start, scene.frame_end = 1, 60

    def slow_render(params, arrays):
        return ("stream_test", {"n_frames": params["n_frames"], "shape": [48, 64, 4],
                                "delay_s": 0.05}, [])

    runtime.SESSION.job_overrides["render"] = slow_render
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    task = runtime.SESSION.task
    runtime.drive(60.0, until=lambda: len(task.written) >= 10)
    runtime.SESSION.local.kill()
    result["killed_after"] = len(task.written)
    t0 = time.monotonic()
    runtime.drive(30.0)
    result["error_after_s"] = round(time.monotonic() - t0, 2)
    result["state"] = task.state
    result["status"] = s.status
    result["last_error"] = s.last_error
    folder = runtime.SESSION.ctx["folder"]
    files = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    result["files"] = len(files)
    result["written"] = len(task.written)
    strips = [st for st in pkg.compat.sequencer_strips(scene) if st.type == "IMAGE"]
    result["strip"] = [[st.channel, int(st.frame_final_start), int(st.frame_final_end),
                        len(st.elements)] for st in strips]
    result["backend_status"] = list(runtime.backend_status())
    runtime.shutdown()


def scenario_generate_real(pkg):
    """The real animate job: mouth moves with speech, rests in silence, happy smiles."""
    scene, face = build_scene()
    runtime = start_backend(pkg)
    s = scene.facecast
    key_two_emotions(scene)
    assert bpy.ops.facecast.generate() == {"FINISHED"}, s.last_error
    t0 = time.monotonic()
    runtime.drive(300.0)
    result["generate_s"] = round(time.monotonic() - t0, 2)
    result["status"], result["last_error"] = s.status, s.last_error
    keys = face.data.shape_keys
    span = runtime.SESSION.generated.get(face.name, {}).get("frames")
    frames = [int(f) for f in span] if span is not None else []
    result["frames"] = [frames[0], frames[-1]] if frames else []
    for name in ("jawOpen", "mouthSmileLeft", "mouthSmileRight"):
        result[name] = fcurve_values(keys, f'key_blocks["{name}"].value', frames)
    runtime.shutdown()


def scenario_render_real(pkg):
    """The real render job on the shipped demo subject: RGBA frames into a VSE strip."""
    scene, face = build_scene()
    scene.frame_start, scene.frame_end = 1, 4
    cam = scene.camera
    cam.location = (0.0, -0.75, 0.0)
    keys = face.data.shape_keys
    jaw = keys.key_blocks["jawOpen"]
    for frame, value in ((1, 0.0), (4, 1.0)):
        jaw.value = value
        jaw.keyframe_insert("value", frame=frame)
    runtime = start_backend(pkg)
    s = scene.facecast
    s.subject = "default"
    s.render_source = "SHAPE_KEYS"
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    t0 = time.monotonic()
    runtime.drive(300.0)
    result["render_s"] = round(time.monotonic() - t0, 2)
    result["status"], result["last_error"] = s.status, s.last_error
    folder = runtime.SESSION.ctx["folder"]
    files = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    result["files"] = files
    strips = [st for st in pkg.compat.sequencer_strips(scene) if st.type == "IMAGE"]
    result["strip"] = [[st.channel, int(st.frame_final_start), int(st.frame_final_end),
                        st.blend_type, len(st.elements)] for st in strips]
    result["sound_channel"] = pkg.compat.sequencer_strips(scene)["voice"].channel
    rgba = [f for f in files if not f.startswith("depth")]
    im = bpy.data.images.load(os.path.join(folder, rgba[0]))
    px = np.empty(len(im.pixels), np.float32)
    im.pixels.foreach_get(px)
    result["png_size"], result["png_channels"] = list(im.size), im.channels
    result["alpha_mean"] = float(px[3::4].mean())
    result["alpha_max"] = float(px[3::4].max())
    runtime.shutdown()


SCENARIOS = {"ui": scenario_ui, "plumbing": scenario_plumbing, "kill": scenario_kill,
             "generate_real": scenario_generate_real, "render_real": scenario_render_real}

try:
    package = setup_addon()
    SCENARIOS[SCENARIO](package)
except Exception:
    result["error"] = traceback.format_exc()
finally:
    try:
        from bl_ext.user_default.facecast import runtime as _rt

        _rt.shutdown()
    except Exception:
        pass

with open(OUT, "w", encoding="utf-8") as fh:
    json.dump(result, fh)
