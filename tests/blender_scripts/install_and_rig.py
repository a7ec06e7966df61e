"""Run inside a fresh bpy process: install the built zip, enable it, build the demo rig.

Usage: python install_and_rig.py ZIP [--expect-refusal] OUT_JSON. With --expect-refusal
it only reports whether Blender installed/enabled the zip (for a zip meant for another
Blender version). The test sets BLENDER_USER_* to a temp dir
first, so nothing touches the real user's Blender config. Results go to OUT_JSON because
Blender prints a lot to stdout.
"""

import json
import sys
import traceback

import bpy
import numpy as np

ZIP, OUT = sys.argv[1], sys.argv[-1]
EXPECT_REFUSAL = "--expect-refusal" in sys.argv
MODULE = "bl_ext.user_default.facecast"
result: dict = {"steps": []}


def step(name: str) -> None:
    result["steps"].append(name)


try:
    import addon_utils  # only importable once bpy has started Blender

    ret = bpy.ops.extensions.package_install_files(
        filepath=ZIP, repo="user_default", enable_on_install=True
    )
    result["install"] = sorted(ret)
    step("installed")
    result["enabled"] = MODULE in bpy.context.preferences.addons
    if EXPECT_REFUSAL:
        raise SystemExit(0)
    result["addon_utils_loaded"] = addon_utils.check(MODULE)[1]
    prefs = bpy.context.preferences.addons[MODULE].preferences
    result["prefs_class"] = type(prefs).__name__
    result["prefs"] = {
        "backend_address": prefs.backend_address,
        "connect_timeout": prefs.connect_timeout,
        "job_timeout": prefs.job_timeout,
        "start_local_backend": prefs.start_local_backend,
        "key_file": prefs.key_file,
    }
    step("prefs")

    # Wheels Blender unpacked for this platform (user extensions' private site-packages).
    import os

    ext_dir = bpy.utils.user_resource("EXTENSIONS")
    site = []
    for root, dirs, _files in os.walk(os.path.join(ext_dir, ".local")):
        if root.endswith("site-packages"):
            site.extend(sorted(dirs))
    result["site_packages"] = site

    from bl_ext.user_default.facecast import shared  # the vendored package
    from bl_ext.user_default.facecast.shared.blendshapes import ARKIT_BLENDSHAPES

    result["shared_version"] = shared.__version__
    step("imports")

    bpy.ops.wm.read_homefile(use_empty=True)  # no default cube; still Object Mode
    ret = bpy.ops.facecast.create_demo_rig()
    result["create"] = sorted(ret)
    obj = bpy.context.view_layer.objects.active
    keys = obj.data.shape_keys.key_blocks
    result["object"] = obj.name
    result["n_verts"] = len(obj.data.vertices)
    result["nonzero_values"] = [k.name for k in keys[1:] if k.value != 0.0]
    result["key_names"] = [k.name for k in keys]
    result["arkit"] = list(ARKIT_BLENDSHAPES)

    n = len(obj.data.vertices)
    basis = np.empty(n * 3, dtype=np.float32)
    keys["Basis"].data.foreach_get("co", basis)
    jaw = np.empty(n * 3, dtype=np.float32)
    keys["jawOpen"].data.foreach_get("co", jaw)
    dz = (jaw - basis).reshape(-1, 3)[:, 2]
    result["jaw_min_dz"] = float(dz.min())
    result["jaw_max_dz"] = float(dz.max())
    result["jaw_moved_down"] = int((dz < -1e-3).sum())

    # Evaluated mesh: setting the key value must actually move the mesh.
    keys["jawOpen"].value = 1.0
    deps = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(deps).to_mesh()
    co = np.empty(n * 3, dtype=np.float32)
    ev.vertices.foreach_get("co", co)
    result["eval_min_dz"] = float((co - basis).reshape(-1, 3)[:, 2].min())
    obj.evaluated_get(deps).to_mesh_clear()
    step("rig")

    bpy.ops.preferences.addon_disable(module=MODULE)
    result["disabled"] = MODULE not in bpy.context.preferences.addons
    result["op_gone"] = not hasattr(bpy.types, "FACECAST_OT_create_demo_rig")
    step("disabled")
except SystemExit:
    pass
except Exception:
    result["error"] = traceback.format_exc()

with open(OUT, "w", encoding="utf-8") as fh:
    json.dump(result, fh)
