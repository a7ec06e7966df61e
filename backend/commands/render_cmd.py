"""``facecast render SUBJECT --motion anim.npz --camera cam.json -o frames/``.

Writes ``NNNNNN.png`` (RGBA, straight alpha, 8 bit) and ``depth_NNNNNN.png`` (16-bit
grey, planar millimetres from the camera, 0 = no subject) per frame, each written to a
temporary name and renamed, so a reader never sees half a frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from backend.atomic_file import write_atomic
from shared.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a subject with a motion at a Blender camera")
    p.add_argument("subject", help="subject name or folder")
    p.add_argument("--motion", type=Path, required=True,
                   help="anim.npz with landmarks [T,478,3] and/or blendshapes [T,52], "
                   "optional head_pose [T,4,4] (head -> Blender world)")
    p.add_argument("--camera", type=Path, required=True, help="cam.json from the add-on")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--fp16", action="store_true", help="half precision on CUDA")
    p.add_argument("--start", type=int, default=1, help="number of the first frame file")
    p.set_defaults(func=_render)


def write_png_atomic(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    write_atomic(path, lambda f: Image.fromarray(array).save(f, format="PNG"))


def load_motion(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as d:
            return {k: d[k] for k in ("landmarks", "blendshapes", "head_pose") if k in d}
    except FileNotFoundError as exc:
        raise InputError(f"motion file not found: {path}", "pass an anim.npz") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"motion file {path.name} is not a readable .npz: {exc}",
                         "write it with numpy.savez (landmarks, blendshapes, head_pose)"
                         ) from exc


def _render(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from backend.nerf.pipeline import check_conditioning, render_sequence
    from backend.subject.build import pick_device
    from backend.subject.store import load_subject
    from shared.camera import camera_views, load_camera

    motion = load_motion(args.motion)
    cond = check_conditioning(motion.get("landmarks"), motion.get("blendshapes"),
                              motion.get("head_pose"))
    cam, mw = load_camera(args.camera)
    views = camera_views(cam, mw, len(cond))
    subject = load_subject(args.subject, pick_device(args.device))
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {args.out}: {exc}",
                         "choose a writable folder") from exc
    frames = render_sequence(subject.model, subject.grid, views, cond, fp16=args.fp16)
    for i, rgba, depth in tqdm(frames, total=len(cond), desc="rendering", unit="frame"):
        n = args.start + i
        write_png_atomic(args.out / f"{n:06d}.png", rgba)
        write_png_atomic(args.out / f"depth_{n:06d}.png", depth)
    print(f"{len(cond)} frames written to {args.out}")
    return 0
