"""A test-owned backend: the real server with deterministic ``animate`` / ``render`` jobs.

Run as ``python -m tests.job_doubles --address tcp://127.0.0.1:0 --key-file K
--ready-file R [--frame-delay S] [--no-text] [--hold-after N --hold-file F]
[--start-delay S]``. It is
``facecast serve`` in every respect (real sockets, signing, credit, WELCOME with job
features) except that this process's job
registry holds the doubles below instead of the motion model and the NeRF — so add-on
tests can check exact numbers, and the product carries no test hook.

* ``animate`` declares the ``"text"`` feature (``--no-text``: it does not, like an older
  backend) and answers with weights from :func:`double_weights`; DONE echoes what it
  received (params, array shapes, the dialogue text if any).
* ``render`` streams RGBA frames and depth from :func:`double_depth` (uint16 mm, 0 =
  no surface), the way the real job does; DONE echoes the conditioning's sums. With
  ``--hold-after N --hold-file F`` it hangs after its N-th frame (no frames, no progress:
  only the server's heartbeats) until the file F exists — a stuck compute the test
  releases when it chooses, so nothing depends on timing.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from backend.jobs import registry
from backend.jobs.base import Job, JobContext
from shared.blendshapes import ARKIT_BLENDSHAPES
from shared.camera import camera_from_dict

FRAME_DELAY_S = 0.0
HOLD_AFTER = 0  # frames sent before the render hangs (0: never)
HOLD_FILE = ""  # the hang ends when this file exists


def double_weights(n_frames: int) -> np.ndarray:
    """``[T, 52]``: channel c at frame i is ``((i + 3c) % 10) / 9`` — every channel and
    frame distinct enough that a swapped column or an off-by-one frame shows."""
    i = np.arange(n_frames)[:, None]
    c = np.arange(len(ARKIT_BLENDSHAPES))[None, :]
    return (((i + 3 * c) % 10) / 9.0).astype(np.float32)


def double_depth(index: int, height: int, width: int) -> np.ndarray:
    """uint16 mm: ``500 + 7 * index + x + 3 * y``, and 0 (no surface) in column 0."""
    y, x = np.mgrid[:height, :width]
    depth = (500 + 7 * index + x + 3 * y).astype(np.uint16)
    depth[:, 0] = 0
    return depth


class EchoAnimate(Job):
    kind = "animate"
    description = "test double: deterministic weights, echoes its inputs"
    features = ("text",)

    def run(self, ctx: JobContext) -> dict[str, Any]:
        p = ctx.params
        n = int(p["n_frames"])
        bs = double_weights(n)
        head = np.broadcast_to(np.eye(4, dtype=np.float32), (n, 4, 4)).copy()
        zeros = np.zeros(n, np.float32)
        weights = np.asarray(ctx.arrays[1], np.float32) if len(ctx.arrays) == 3 else \
            np.zeros((n, 8), np.float32)
        ctx.result({"chunk": 0, "start": 0, "n_frames": n},
                   [bs, head, zeros, weights, zeros + 1.0])
        return {"n_frames": n, "arrays": ["blendshapes", "head_pose", "blink",
                                          "emotion_weights", "emotion_intensity"],
                "received": {"params": {k: v for k, v in p.items()},
                             "arrays": [[str(a.dtype), list(a.shape)] for a in ctx.arrays]}}


class PatternRender(Job):
    kind = "render"
    description = "test double: patterned RGBA + depth frames"

    def run(self, ctx: JobContext) -> dict[str, Any]:
        p = ctx.params
        w, h = camera_from_dict(p["camera"])[0].image_size
        n = len(ctx.arrays[0])  # one row per frame, as the render service counts
        for i in range(n):
            if FRAME_DELAY_S:
                time.sleep(FRAME_DELAY_S)
            ctx.check_cancelled()
            rgba = np.zeros((h, w, 4), np.uint8)
            rgba[..., 0] = i % 251
            rgba[h // 4: 3 * h // 4, w // 4: 3 * w // 4, 3] = 255
            ctx.frame({"index": i, "depth_units": "mm"}, [rgba, double_depth(i, h, w)])
            ctx.progress((i + 1) / n)
            if i + 1 == HOLD_AFTER:
                while not os.path.exists(HOLD_FILE):  # stuck, but cancellable
                    ctx.check_cancelled()
                    time.sleep(0.02)
        names = p.get("array_names", [])
        return {"frames": n, "received": {
            "params": {**{k: p[k] for k in ("array_names", "subject")},
                       "signed_png": p.get("signed_png")},
            "param_names": sorted(p),
            "shapes": [list(a.shape) for a in ctx.arrays],
            "sums": {name: float(np.asarray(a, np.float64).sum())
                     for name, a in zip(names, ctx.arrays, strict=False)}}}


def main() -> None:
    global FRAME_DELAY_S, HOLD_AFTER, HOLD_FILE
    parser = argparse.ArgumentParser()
    parser.add_argument("--frame-delay", type=float, default=0.0)
    parser.add_argument("--no-text", action="store_true",
                        help="an animate job without the text feature (an older backend)")
    parser.add_argument("--hold-after", type=int, default=0)
    parser.add_argument("--hold-file", default="")
    parser.add_argument("--start-delay", type=float, default=0.0,
                        help="seconds before the server starts (a slow first start)")
    args, serve_args = parser.parse_known_args()
    FRAME_DELAY_S, HOLD_AFTER, HOLD_FILE = args.frame_delay, args.hold_after, args.hold_file
    animate = EchoAnimate
    if args.no_text:
        animate = type("EchoAnimateAudioOnly", (EchoAnimate,), {"features": ()})
    time.sleep(args.start_delay)
    registry.kinds()  # load the built-in jobs, then put the doubles in their place
    for job in (animate, PatternRender):
        registry._JOBS[job.kind] = job
    from backend.cli import main as cli_main

    raise SystemExit(cli_main(["serve", *serve_args]))


if __name__ == "__main__":
    main()
