"""``facecast subject build CLIP --name NAME``: capture a person as a renderable subject."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("subject", help="build photoreal subjects (tri-plane NeRFs)")
    ss = p.add_subparsers(dest="subject_cmd", required=True, metavar="ACTION")
    b = ss.add_parser("build", help="train a subject from a video of a person")
    b.add_argument("clip", type=Path, help="video of one person facing the camera")
    b.add_argument("--name", required=True, help="subject name")
    b.add_argument("--res", type=int, default=256, help="training resolution (longer side)")
    b.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    b.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    b.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    b.add_argument("--out", type=Path, default=None,
                   help="subject folder (default: the user's subject store / NAME)")
    b.add_argument("--resume", action="store_true", help="continue an interrupted build")
    b.add_argument("--max-frames", type=int, default=None, help="use the first N frames")
    b.add_argument("--plane-res", type=int, default=256, help="tri-plane resolution")
    b.add_argument("--plane-channels", type=int, default=16, help="tri-plane channels")
    b.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice); use 1 when the "
                        "machine is shared: oversubscribed OpenMP threads spin and crawl")
    b.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from backend.nerf.model import ModelConfig
    from backend.subject.build import build_subject
    from backend.subject.store import default_subject_dir
    from backend.subject.train import TrainConfig

    if args.threads:
        import torch

        torch.set_num_threads(max(1, args.threads))
    out = args.out or default_subject_dir(args.name)
    m = build_subject(args.clip, out, name=args.name, res=args.res,
                      train=TrainConfig(steps=args.steps, minutes=args.minutes),
                      model_cfg=ModelConfig(plane_res=args.plane_res,
                                            plane_channels=args.plane_channels),
                      device=args.device, resume=args.resume, max_frames=args.max_frames)
    print(f"subject {args.name!r} written to {out}")
    print(json.dumps({"evaluation": m["evaluation"], "steps": m["training"]["steps"],
                      "seconds": m["training"]["seconds"]}, indent=1))
    return 0
