"""``facecast subject build CLIP --name NAME``: capture a person as a renderable subject.

Budgets: ``--steps`` (reproducible: the same steps give the same subject on any
machine), ``--cpu-minutes`` (process CPU time, all threads together: what the build
costs, whatever else runs on the machine) and ``--minutes`` (wall clock). Training stops
at whichever ends first, and the learning rate anneals over the same budget.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from backend.threads import add_threads_argument
from shared.errors import InputError

log = logging.getLogger(__name__)

#: Below this many steps a subject is fog, not a face (measured: 36 steps render fog;
#: the default subject's face is recognisable from ~1000 steps on).
MIN_USEFUL_STEPS = 1000
#: Rough CPU cost of one step at 256^2 (2 threads, idle), to translate time budgets.
CPU_SECONDS_PER_STEP = 1.6


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("subject", help="build photoreal subjects (tri-plane NeRFs)")
    ss = p.add_subparsers(dest="subject_cmd", required=True, metavar="ACTION")
    b = ss.add_parser("build", help="train a subject from a video of a person")
    b.add_argument("clip", type=Path, help="video of one person facing the camera")
    b.add_argument("--name", required=True, help="subject name")
    b.add_argument("--res", type=int, default=256, help="training resolution (longer side)")
    b.add_argument("--minutes", type=float, default=None,
                   help="wall-clock training budget (default: none when --steps or "
                        "--cpu-minutes is given, else 30)")
    b.add_argument("--cpu-minutes", type=float, default=None,
                   help="process CPU-time budget, all threads together")
    b.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    b.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    b.add_argument("--out", type=Path, default=None,
                   help="subject folder (default: the user's subject store / NAME)")
    b.add_argument("--resume", action="store_true", help="continue an interrupted build")
    b.add_argument("--max-frames", type=int, default=None, help="use the first N frames")
    b.add_argument("--plane-res", type=int, default=None,
                   help="finest tri-plane resolution (default 320)")
    add_threads_argument(b)
    b.set_defaults(func=_build)


def check_budget(steps: int | None, minutes: float | None, cpu_minutes: float | None,
                 device: str) -> tuple[int | None, float, float | None]:
    """Refuse budgets that cannot train, warn about ones too small to be useful; returns
    (steps, wall minutes, CPU minutes)."""
    for name, value in (("--steps", steps), ("--minutes", minutes),
                        ("--cpu-minutes", cpu_minutes)):
        if value is not None and not value > 0:
            raise InputError(f"{name} {value} would write an untrained subject",
                             f"give {name} a positive budget (e.g. --steps 3000)")
    if minutes is None:
        minutes = 1e9 if (steps or cpu_minutes) else 30.0
    expected = [steps] if steps else []
    if device == "cpu":
        expected.append(int(minutes * 60 * 2 / CPU_SECONDS_PER_STEP))
        if cpu_minutes:
            expected.append(int(cpu_minutes * 60 / CPU_SECONDS_PER_STEP))
    if expected and min(expected) < MIN_USEFUL_STEPS:
        log.warning("this budget gives about %d training steps; below %d a subject is fog, "
                    "not a face: give --steps %d or more (about %.0f CPU minutes)",
                    min(expected), MIN_USEFUL_STEPS, MIN_USEFUL_STEPS,
                    MIN_USEFUL_STEPS * CPU_SECONDS_PER_STEP / 60)
    return steps, minutes, cpu_minutes


def _build(args: argparse.Namespace) -> int:
    import dataclasses

    from backend.nerf.model import CURRENT
    from backend.subject.build import build_subject
    from backend.subject.store import default_subject_dir
    from backend.subject.train import TrainConfig
    from backend.threads import set_threads

    if not args.name.strip():
        raise InputError("the subject name is empty", "pass --name NAME (e.g. --name alice)")
    threads = set_threads(args.threads)
    steps, minutes, cpu_minutes = check_budget(args.steps, args.minutes, args.cpu_minutes,
                                               args.device)
    cfg = CURRENT
    if args.plane_res:
        (_, ch), *rest = cfg.levels()
        cfg = dataclasses.replace(cfg, plane_levels=((args.plane_res, ch), *rest))
    out = args.out or default_subject_dir(args.name)
    m = build_subject(args.clip, out, name=args.name, res=args.res,
                      train=TrainConfig(steps=steps, minutes=minutes, cpu_minutes=cpu_minutes),
                      model_cfg=cfg, device=args.device, resume=args.resume,
                      max_frames=args.max_frames, threads=threads)
    print(f"subject {args.name!r} written to {out}")
    t = m["training"]
    print(json.dumps({"evaluation": m["evaluation"], "steps": t["steps"],
                      "seconds": t["seconds"], "cpu_seconds": t.get("cpu_seconds")},
                     indent=1))
    return 0
