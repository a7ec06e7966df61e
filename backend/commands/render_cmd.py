"""``facecast render SUBJECT --motion anim.npz --camera cam.json|front -o frames/``.

The render is the render service's (``backend.render``); the animation goes through the
one conditioning contract (``backend.subject.conditioning.render_conditioning``): an
``anim.npz`` from ``facecast animate`` renders as it is (its head pose is recorded as
``motion``, placed at the origin facing -Y); ``--camera front`` frames the head from the front at
``--size`` (the demo's camera), so no add-on is needed for a ``cam.json``.

Writes ``NNNNNN.png`` (RGBA, straight alpha, 8 bit; invisibly watermarked and carrying
C2PA content credentials, see ``backend.provenance``) and ``depth/NNNNNN.exr`` (float
planar metres from the camera, 1e10 = no subject: Blender's Z pass units,
``backend.media.frame_files``) per frame, each written to a temporary name and renamed,
so a reader never sees half a frame.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from backend.atomic_file import write_atomic
from backend.subject.contract import HEAD_POSE_FRAME_KEY, HEAD_POSE_FRAMES
from backend.threads import add_threads_argument
from shared.errors import InputError

if TYPE_CHECKING:
    from backend.render import FrontCamera, RenderRequest

CONDITIONING_KEYS = ("landmarks", "blendshapes", "head_pose")
MOTION_KEYS = (*CONDITIONING_KEYS, HEAD_POSE_FRAME_KEY, "subject")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a subject with a motion at a Blender camera")
    p.add_argument("subject", help="subject name or folder")
    p.add_argument("--motion", type=Path, required=True,
                   help="anim.npz / anim.json from `facecast animate` (or any .npz with "
                   "landmarks [T,478,3] and/or blendshapes [T,52], optional head_pose "
                   f"[T,4,4] with {HEAD_POSE_FRAME_KEY} = {' or '.join(HEAD_POSE_FRAMES)})")
    p.add_argument("--camera", required=True, metavar="CAM.json|front",
                   help="cam.json from the add-on, or 'front': the head from the front")
    p.add_argument("--size", default="512", metavar="W[xH]",
                   help="image size for --camera front (default 512)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--fp16", action="store_true", help="half precision on CUDA")
    p.add_argument("--start", type=int, default=1, help="number of the first frame file")
    add_threads_argument(p)
    p.set_defaults(func=_render)


def write_png_atomic(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    write_atomic(path, lambda f: Image.fromarray(array).save(f, format="PNG"))


def load_motion(path: Path) -> dict:
    """The arrays of an ``anim.npz`` / ``anim.json`` that a render uses."""
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return {k: (np.asarray(data[k], np.float32) if k in ("landmarks", "blendshapes",
                                                                 "head_pose") else data[k])
                    for k in MOTION_KEYS if k in data}
        with np.load(path, allow_pickle=False) as d:
            return {k: d[k] for k in MOTION_KEYS if k in d}
    except FileNotFoundError as exc:
        raise InputError(f"motion file not found: {path}", "pass an anim.npz") from exc
    except (OSError, ValueError, TypeError, EOFError) as exc:  # EOFError: 0 bytes
        raise InputError(f"motion file {path.name} is not a readable .npz/.json: {exc}",
                         "write it with `facecast animate` or numpy.savez (landmarks, "
                         "blendshapes, head_pose, head_pose_frame)") from exc


def parse_size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in str(text).lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or not all(16 <= v <= 4096 for v in parts):
        raise InputError(f"--size {text!r} is not an image size",
                         "pass W or WxH in pixels, 16..4096 (e.g. 512 or 640x480)")
    return parts[0], parts[-1]


def camera_dict(camera: str, manifest: dict, size: str) -> dict:
    """``--camera`` as a cam.json dict for ``manifest``'s subject."""
    from backend.render import FrontCamera
    from backend.subject.framing import front_camera

    arg = camera_arg(camera, size)
    return front_camera(manifest, arg.width, arg.height) if isinstance(arg, FrontCamera) \
        else arg


def camera_arg(camera: str, size: str) -> dict | FrontCamera:
    """``--camera``: a cam.json file, or 'front' at ``--size`` (``backend.subject.framing``)."""
    from backend.render import FrontCamera

    if camera.strip().lower() == "front":
        return FrontCamera(*parse_size(size))
    path = Path(camera)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"camera file not found: {path}",
                         "export it from the add-on, or use --camera front") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"camera file {path.name} is not valid JSON: {exc}",
                         "export it again from the add-on, or use --camera front") from exc


def _request(args: argparse.Namespace, motion: dict) -> RenderRequest:
    """The render service's request for the command line's motion and camera."""
    from backend.render import RenderRequest

    frame, made_for = motion.get(HEAD_POSE_FRAME_KEY), motion.get("subject")
    return RenderRequest(
        subject=args.subject, camera=camera_arg(args.camera, args.size),
        device=args.device, fp16=args.fp16,
        arrays={k: motion[k] for k in CONDITIONING_KEYS if k in motion},
        head_pose_frame=None if frame is None else str(np.asarray(frame)),
        made_for=None if made_for is None else str(made_for),
        signed_png=True, first_number=args.start)


def _render(args: argparse.Namespace) -> int:
    from backend.media.frame_files import stale_sequence, write_depth
    from backend.progress import progress
    from backend.provenance.consent import consent_line
    from backend.render import prepare_render
    from backend.subject.build import pick_device
    from backend.threads import set_threads

    set_threads(args.threads)
    motion = load_motion(args.motion)
    pick_device(args.device)  # --device cuda without a GPU: said in the flag's words
    render = prepare_render(_request(args, motion))
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {args.out}: {exc}",
                         "choose a writable folder") from exc
    n_frames = len(render)
    with progress(n_frames, "rendering", "frame") as bar, closing(render.frames()) as frames:
        for f in frames:
            n = args.start + f.index
            write_atomic(args.out / f"{n:06d}.png", lambda out, png=f.png: out.write(png))
            write_depth(args.out, n, f.depth)
            bar.update(1)
    print(f"{n_frames} frames written to {args.out} (watermarked, C2PA-signed: subject "
          f"{render.stamp.subject_name!r}, {consent_line(render.manifest)})")
    first, last = args.start, args.start + n_frames - 1
    stale = stale_sequence(args.out, first, last)
    if stale:
        print(f"facecast: warning: {len(stale)} older frame files in {args.out} are outside "
              f"this render's {first:06d}..{last:06d} ({stale[0].name} …) and were left as "
              "they are — delete them or render into an empty folder", file=sys.stderr)
    return 0
