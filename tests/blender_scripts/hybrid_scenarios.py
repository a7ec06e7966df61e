"""Hybrid-shot scenarios for ``facecast_flow.py`` (run inside bpy): a CG scene with a
cube in front of the head's lower face and a plane behind it, seen by a camera at an
angle; the NeRF head's frames (synthetic, or from the real backend through Render to
Sequencer) are depth-combined by the add-on's Composite with Scene and rendered by
Cycles through Blender's compositor.

What each scenario dumps for the test (which does the pixel checks itself): the
composite PNG, the NeRF frames folder, and per pixel centre the CG that a ray from the
camera hits first (0 none, 1 cube, 2 plane) and its planar depth.
"""

import os

import bpy
import numpy as np
from mathutils import Vector

CUBE_RGB = (0.05, 0.8, 0.05)
PLANE_RGB = (0.1, 0.2, 0.9)
HEAD_RGB = (0.9, 0.55, 0.35)  # the synthetic head's straight colour


def _emission(name, rgb):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs["Color"].default_value = (*rgb, 1.0)
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(emit.outputs[0], out.inputs["Surface"])
    return mat


def _look_at(obj, target):
    direction = Vector(target) - obj.location
    obj.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()


def cg_scene(scene, size, head_at=(0.0, 0.0, 0.0)):
    """Camera at an angle, a cube crossing in front of the lower face, a plane behind;
    Cycles with emission-only materials (exact colours), Standard view transform."""
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 16
    scene.cycles.device = "CPU"
    if hasattr(scene.cycles, "use_denoising"):
        scene.cycles.use_denoising = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    scene.render.film_transparent = False
    hx, hy, hz = head_at
    cam = scene.camera
    if cam is None:
        cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
        scene.collection.objects.link(cam)
        scene.camera = cam
    cam.data.lens = 50
    cam.location = (hx + 0.35, hy - 0.62, hz + 0.08)  # ~30 degrees to the side
    _look_at(cam, (hx, hy, hz))
    bpy.ops.mesh.primitive_cube_add(size=0.07, location=(hx + 0.1, hy - 0.15, hz - 0.05))
    cube = bpy.context.active_object
    cube.name = "CG Cube"
    cube.rotation_euler = (0.3, 0.2, 0.5)
    cube.data.materials.append(_emission("Cube", CUBE_RGB))
    bpy.ops.mesh.primitive_plane_add(size=3.0, location=(hx - 0.15, hy + 0.35, hz))
    plane = bpy.context.active_object
    plane.name = "CG Plane"
    plane.rotation_euler = (1.5708, 0.0, 0.35)
    plane.data.materials.append(_emission("Plane", PLANE_RGB))
    scene.view_layers[0].use_pass_z = True
    return cam, cube, plane


def pixel_rays(scene, cam, sub=1):
    """World ray origins/directions through pixel centres (``sub`` x ``sub`` samples per
    pixel, rows top to bottom) and the camera's world->camera matrix."""
    w, h = scene.render.resolution_x, scene.render.resolution_y
    frame = [np.array(v) for v in cam.data.view_frame(scene=scene)]  # TR, BR, BL, TL
    right, top = frame[0][0], frame[0][1]
    left, bottom, z = frame[2][0], frame[2][1], frame[0][2]
    off = (np.arange(sub) + 0.5) / sub
    us = (np.arange(w)[:, None] + off[None]).reshape(-1) / w
    vs = (np.arange(h)[:, None] + off[None]).reshape(-1) / h
    x = left + us[None, :] * (right - left)
    y = top - vs[:, None] * (top - bottom)
    local = np.stack([np.broadcast_to(x, (h * sub, w * sub)),
                      np.broadcast_to(y, (h * sub, w * sub)),
                      np.full((h * sub, w * sub), z)], axis=-1)
    mw = np.array(cam.matrix_world)
    dirs = local @ mw[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    return mw[:3, 3], dirs, np.linalg.inv(mw)


def cg_hits(scene, cam, objects):
    """Per pixel centre: which of ``objects`` a camera ray hits first (1-based index,
    0 none) and its planar depth (inf where none)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    origin, dirs, w2c = pixel_rays(scene, cam)
    h, w = dirs.shape[:2]
    label = np.zeros((h, w), np.int8)
    depth = np.full((h, w), np.inf)
    names = [o.name for o in objects]
    for i in range(h):
        for j in range(w):
            start, d = Vector(origin), Vector(dirs[i, j])
            for _ in range(4):  # past objects that are not rendered (the rig's mesh)
                hit, loc, _n, _idx, obj, _m = scene.ray_cast(depsgraph, start, d)
                if not hit or obj is None or obj.name in names:
                    break
                start = loc + d * 1e-4
            if hit and obj is not None and obj.name in names:
                label[i, j] = names.index(obj.name) + 1
                depth[i, j] = -(w2c @ np.array([*loc, 1.0]))[2]
    return label, depth


def synthetic_head(scene, cam, centre, radius, folder, frame, write_frame):
    """A sphere 'head' rendered like the NeRF: 4x4 samples per pixel give a soft
    (partial-alpha) rim; depth is the covered samples' mean planar depth (the NeRF's
    normalised expected depth); written through the add-on's own frame writer."""
    sub = 4
    origin, dirs, w2c = pixel_rays(scene, cam, sub)
    oc = origin - np.asarray(centre)
    b = dirs @ oc
    disc = b * b - (oc @ oc - radius * radius)
    hit = disc > 0
    t = -b - np.sqrt(np.where(hit, disc, 0.0))
    pts = origin + t[..., None] * dirs
    planar = -(pts @ w2c[:3, :3].T + w2c[:3, 3])[..., 2]
    h, w = dirs.shape[0] // sub, dirs.shape[1] // sub
    cov = hit.reshape(h, sub, w, sub).mean(axis=(1, 3))
    dsum = np.where(hit, planar, 0.0).reshape(h, sub, w, sub).sum(axis=(1, 3))
    depth = np.where(cov > 0, dsum / np.maximum(hit.reshape(h, sub, w, sub).sum(axis=(1, 3)),
                                                1), 0.0)
    rgba = np.zeros((h, w, 4), np.float32)
    rgba[..., :3] = HEAD_RGB
    rgba[..., 3] = cov
    write_frame(folder, frame, rgba, depth.astype(np.float32))


def render_composite(scene, path):
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)
    return path


def tree_snapshot(scene, compat):
    """Everything of the compositor tree a user would notice, comparable as JSON."""
    tree = compat.compositor_tree(scene)
    if tree is None:
        return None
    nodes = sorted([n.name, n.bl_idname, [round(v, 3) for v in n.location]]
                   for n in tree.nodes)
    links = sorted([lk.from_node.name, lk.from_socket.identifier, lk.to_node.name,
                    lk.to_socket.identifier] for lk in tree.links)
    return {"nodes": nodes, "links": links, "uses_nodes": compat.compositor_uses_nodes(scene),
            "use_compositing": scene.render.use_compositing}


def user_tree(scene, compat):
    """A user's own compositor: render layers -> a colour balance -> output."""
    tree, _ = compat.ensure_compositor_tree(scene)
    out, out_socket = compat.compositor_output(tree)
    if out is None:
        out, out_socket = compat.new_compositor_output(tree)
    layers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None)
    if layers is None:
        layers = tree.nodes.new("CompositorNodeRLayers")
    grade = tree.nodes.new("CompositorNodeBrightContrast")  # 0, 0: identity
    grade.name = "User Grade"
    grade.location = (200, 0)
    tree.links.new(layers.outputs["Image"], grade.inputs[0])
    tree.links.new(grade.outputs[0], out_socket)
    return tree


def scenario_composite(pkg, flow):
    """Synthetic head + CG through Composite with Scene: on, again (idempotent), render,
    off (the user's tree back); the refusals leave the tree as it was."""
    from bl_ext.user_default.facecast import compat
    from bl_ext.user_default.facecast.core import frame_writer
    from bl_ext.user_default.facecast.writers import scene_composite

    result = flow.result
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start = scene.frame_end = 1
    cam, cube, plane = cg_scene(scene, (64, 48))
    tmp = flow.cfg["tmp"]
    folder = os.path.join(tmp, "nerf")
    from pathlib import Path

    synthetic_head(scene, cam, (0.0, 0.0, 0.0), 0.08, Path(folder), 1, frame_writer.write_frame)
    user_tree(scene, compat)
    s = scene.facecast
    before = tree_snapshot(scene, compat)
    result["tree_before"] = before

    # Refusals first: each is one message and leaves the tree exactly as it was.
    refusals = {}
    scene.view_layers[0].use_pass_z = False
    s.nerf_frames = folder
    refusals["no_z"] = flow.call_op(bpy.ops.facecast.composite_with_scene)
    refusals["no_z_tree_same"] = tree_snapshot(scene, compat) == before
    scene.view_layers[0].use_pass_z = True
    scene.frame_end = 2  # frame 2 was never rendered
    refusals["missing_frame"] = flow.call_op(bpy.ops.facecast.composite_with_scene)
    refusals["missing_tree_same"] = tree_snapshot(scene, compat) == before
    scene.frame_end = 1
    depth_path = frame_writer.depth_file(Path(folder), 1)
    good = depth_path.read_bytes()
    frame_writer.write_atomic(depth_path, pkg.shared.depth_exr.encode_depth_exr(
        np.ones((24, 32), np.float32)))
    refusals["wrong_size"] = flow.call_op(bpy.ops.facecast.composite_with_scene)
    refusals["wrong_size_tree_same"] = tree_snapshot(scene, compat) == before
    refusals["last_error"] = s.last_error
    depth_path.write_bytes(good)
    result["refusals"] = refusals

    result["on"] = flow.call_op(bpy.ops.facecast.composite_with_scene)
    first = tree_snapshot(scene, compat)
    result["on_again"] = flow.call_op(bpy.ops.facecast.composite_with_scene)
    result["idempotent"] = tree_snapshot(scene, compat) == first
    result["n_nodes_on"] = len(first["nodes"])
    result["status"] = s.status
    result["composite_png"] = render_composite(scene, os.path.join(tmp, "composite.png"))
    label, depth = cg_hits(scene, cam, [cube, plane])
    np.savez(os.path.join(tmp, "cg.npz"), label=label, depth=depth)
    result["nerf_folder"] = folder
    result["off"] = flow.call_op(bpy.ops.facecast.composite_off)
    result["tree_after"] = tree_snapshot(scene, compat)
    result["restored"] = result["tree_after"] == before
    result["state_left"] = scene_composite.is_active(scene)

    # A scene with no compositor at all: on, then off, leaves none behind.
    bare = bpy.data.scenes.new("Bare")
    bare.camera = cam
    bare.view_layers[0].use_pass_z = True
    bare.frame_start = bare.frame_end = 1
    bare.render.resolution_x, bare.render.resolution_y = 64, 48
    bare.render.resolution_percentage = 100
    bare_before = tree_snapshot(bare, compat)
    scene_composite.build(bare, bare.view_layers[0], folder)
    result["bare_on_nodes"] = len(tree_snapshot(bare, compat)["nodes"])
    scene_composite.remove(bare)
    bare_after = tree_snapshot(bare, compat)
    # 4.x cannot delete a scene's embedded tree: "Use Nodes" goes back off instead.
    result["bare_restored"] = bare_before is None and (bare_after is None or (
        not bare_after["uses_nodes"]
        and not any(n[0].startswith("Facecast") for n in bare_after["nodes"])))


def compat_strips(scene):
    from bl_ext.user_default.facecast import compat

    return list(compat.sequencer_strips(scene))


def _render_frames(js, flow):
    """Render to Sequencer through the test backend; the scene frames it asked for."""
    s = bpy.context.scene.facecast
    if flow.call_op(bpy.ops.facecast.render_to_sequencer) != ["FINISHED"]:
        return {"frames": [], "error": s.last_error}
    js.drive(60.0)
    run = js.SESSION.run
    received = getattr(run.task, "done_body", {}).get("received") or {}
    have = sorted(run.task.written)
    return {"frames": list(run.frames), "on_disk": have,
            "shapes": received.get("shapes"), "error": s.last_error}


def scenario_range(pkg, flow):
    """Issue 25: Render to Sequencer renders the scene's frame range after any sequence
    of Animate, Render and reopen (an Animate over 48 frames once made every later
    render take all 48)."""
    result = flow.result
    scene, _face = flow.build_scene()
    s = scene.facecast
    scene.frame_start, scene.frame_end = 1, 48
    s.scene_range_only = True
    js = flow.start_backend(flow.cfg["doubles"])
    _status, error, _run = flow.animate(js)
    result["animate_error"] = error
    s.subject = "anyone"
    out = {}
    scene.frame_start, scene.frame_end = 5, 8
    s.render_source = "RIG"
    out["rig_after_animate"] = _render_frames(js, flow)
    s.render_source = "LAST_TAKE"
    out["take_after_render"] = _render_frames(js, flow)
    scene.frame_start, scene.frame_end = 40, 60  # past the take's end: its part only
    out["take_partly_outside"] = _render_frames(js, flow)
    scene.frame_start, scene.frame_end = 60, 63
    out["take_outside"] = _render_frames(js, flow)
    blend = os.path.join(flow.cfg["tmp"], "shot.blend")
    scene.frame_start, scene.frame_end = 9, 11
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    bpy.ops.wm.open_mainfile(filepath=blend)
    scene = bpy.context.scene
    scene.facecast.render_source = "RIG"
    out["rig_after_reopen"] = _render_frames(js, flow)
    _status, error, _run = flow.animate(js)  # animate again over the scene range 9-11
    result["reanimate_error"] = error
    scene.frame_start, scene.frame_end = 10, 10
    scene.facecast.render_source = "LAST_TAKE"
    out["take_after_reopen"] = _render_frames(js, flow)
    result["renders"] = out
    # A bone as the anchor: a vertical bone (roll 0) of a moved, turned armature.
    from bl_ext.user_default.facecast import scene_inputs

    rig = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    bone = rig.data.edit_bones.new("head")
    bone.head, bone.tail, bone.roll = (0.0, 0.0, 0.0), (0.0, 0.0, 0.2), 0.0
    bpy.ops.object.mode_set(mode="OBJECT")
    rig.location, rig.rotation_euler = (0.3, 0.1, 1.5), (0.0, 0.0, 0.5)
    bpy.context.view_layer.update()
    s = scene.facecast
    s.render_source = "RIG"
    s.head_anchor, s.head_anchor_bone = rig, "head"
    result["bone_pose"] = scene_inputs.render_inputs(scene, None).arrays["head_pose"][0].tolist()
    result["rig_world"] = [list(r) for r in rig.matrix_world]
    s.head_anchor_bone = "nope"
    try:
        scene_inputs.render_inputs(scene, None)
    except pkg.shared.errors.InputError as exc:
        result["bad_bone"] = exc.message
    js.shutdown()


ANCHOR_KEYS = {1: ((0.02, 0.0, 0.01), (0.0, 0.0, 0.15)),  # frame: location, rotation
               2: ((0.07, 0.03, 0.04), (0.2, -0.15, 0.45))}  # moved and turned


def scenario_hybrid_real(pkg, flow):
    """The real backend renders the shipped subject where a head anchor puts it (keyed
    at a known place on frame 1, moved and turned on frame 2) for a camera at an angle;
    Composite with Scene combines frame 1 with a cube in front of the lower face and a
    plane behind it."""
    from bl_ext.user_default.facecast import job_session, scene_inputs

    result = flow.result
    size = int(flow.cfg.get("size", 256))
    scene, face = flow.build_scene(with_strip=False)
    face.hide_render = True  # the rig only drives the expression; the NeRF is the face
    scene.frame_start, scene.frame_end = 1, 2
    assert bpy.ops.facecast.add_head_anchor() == {"FINISHED"}
    s = scene.facecast
    anchor = s.head_anchor
    result["anchor"], result["head_target"] = anchor.name, s.head_target.name
    for frame, (loc, rot) in ANCHOR_KEYS.items():
        anchor.location, anchor.rotation_euler = loc, rot
        anchor.keyframe_insert("location", frame=frame)
        anchor.keyframe_insert("rotation_euler", frame=frame)
    scene.frame_set(1)
    cam, cube, plane = cg_scene(scene, (size, size), head_at=ANCHOR_KEYS[1][0])
    js = flow.start_backend(flow.cfg["python"])
    s.subject = "default"
    s.render_source = "RIG"
    assert bpy.ops.facecast.render_to_sequencer() == {"FINISHED"}, s.last_error
    run = job_session.SESSION.run
    params, names, arrays = dict(run.params), list(run.params["array_names"]), run.arrays
    js.drive(600.0)
    result["render_error"] = s.last_error
    tmp = flow.cfg["tmp"]
    np.savez(os.path.join(tmp, "sent.npz"), **dict(zip(names, arrays, strict=True)))
    result["camera"] = params["camera"]
    result["frames"] = list(run.task.requested)
    result["sent_params"] = sorted(params)
    result["nerf_folder"] = s.nerf_frames
    result["placer"] = scene_inputs.head_placer(s)[0].name
    # Composite frame 1 with the CG.
    scene.frame_set(1)
    result["on"] = flow.call_op(bpy.ops.facecast.composite_with_scene)
    result["composite_error"] = s.last_error
    result["composite_png"] = render_composite(scene, os.path.join(tmp, "composite.png"))
    strips = [st for st in compat_strips(scene) if st.type == "IMAGE"]
    result["strips_muted_on"] = [st.mute for st in strips]
    result["sequencer_on"] = scene.render.use_sequencer
    result["off"] = flow.call_op(bpy.ops.facecast.composite_off)
    result["strips_muted_off"] = [st.mute for st in strips]
    result["sequencer_off"] = scene.render.use_sequencer
    face.hide_viewport = True  # not rendered; out of the test's ray casts too
    label, depth = cg_hits(scene, cam, [cube, plane])
    np.savez(os.path.join(tmp, "cg.npz"), label=label, depth=depth)
    js.shutdown()


def scenarios():
    return {"composite": scenario_composite, "range": scenario_range,
            "hybrid_real": scenario_hybrid_real}
