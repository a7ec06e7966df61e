"""Build the demo's .blend in a bpy process, using the add-on's own code.

Run as ``python -m backend.demo.blend_scene ARGS`` (a child process: Blender keeps
global state). The add-on is staged exactly as its zip lays it out (``shared/``
vendored, relative imports), so the rig, the take on the NLA (shape-key F-curves and
head motion) and the sequencer strips are made by the same functions the add-on's
buttons use. Every path is resolved here too, whatever the working directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--animation", type=Path, required=True)
    p.add_argument("--audio", type=Path, required=True)
    p.add_argument("--frames", type=Path, required=True, help="folder of NNNNNN.png")
    p.add_argument("--camera", type=Path, required=True)
    p.add_argument("--fps", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    import bpy

    import build_addon

    staging = Path(tempfile.mkdtemp(prefix="facecast-addon-"))
    build_addon.stage_sources(staging / "facecast_addon")
    sys.path.insert(0, str(staging))
    from facecast_addon import compat, scene_inputs
    from facecast_addon.shared.camera import camera_from_dict
    from facecast_addon.shared.landmarks import pose_to_blender_axes
    from facecast_addon.writers import demo_rig, sequencer_writer, take_writer

    anim = np.load(args.animation.resolve())
    blendshapes = anim["blendshapes"].astype(np.float32)
    n = len(blendshapes)
    frames = np.arange(1, n + 1, dtype=np.float32)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = args.fps, 1.0
    scene.frame_start, scene.frame_end = 1, n

    rig = demo_rig.create_demo_rig(scene.collection)
    mapping = scene_inputs.face_mapping(rig, {})
    notes = "facecast demo"
    take_writer.write_face_take(rig, mapping, blendshapes, frames, 1, notes)
    take_writer.write_head_take(rig, pose_to_blender_axes(anim["head_pose"]), frames, 1, notes)

    cam_settings, matrix = camera_from_dict(json.loads(args.camera.resolve().read_text()))
    cam_data = bpy.data.cameras.new("Facecast Camera")
    cam_data.lens, cam_data.sensor_width = cam_settings.lens, cam_settings.sensor_width
    cam_data.sensor_height, cam_data.sensor_fit = (cam_settings.sensor_height,
                                                   cam_settings.sensor_fit)
    cam_data.clip_start = cam_settings.clip_start
    camera = bpy.data.objects.new("Facecast Camera", cam_data)
    camera.matrix_world = [list(row) for row in np.asarray(matrix).T]  # bpy is column-major
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = cam_settings.image_size

    compat.ensure_sequence_editor(scene)
    sound = compat.new_sound_strip(scene, "Facecast speech", str(args.audio.resolve()), 1, 1)
    frames_dir = args.frames.resolve()
    on_disk = [k for k in range(1, n + 1) if (frames_dir / f"{k:06d}.png").is_file()]
    sequencer_writer.place_image_strip(scene, "Facecast NeRF", frames_dir, on_disk,
                                       above=sound)

    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out))
    print(json.dumps({"blend": str(out), "frames": n, "shape_keys": len(mapping.drives)}))


if __name__ == "__main__":
    main()
