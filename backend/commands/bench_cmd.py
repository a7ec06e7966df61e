"""``facecast bench``: benchmarks that print the numbers the README reports."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure speed and quality; prints a table")
    bs = p.add_subparsers(dest="bench", required=True, metavar="WHAT")
    proto = bs.add_parser("protocol", help="protocol vs raw ZeroMQ throughput and latency")
    proto.add_argument("--frames", type=int, default=400, help="frames per stream")
    proto.add_argument("--size", type=int, default=512, help="frame side (RGBA float16)")
    proto.add_argument("--credit", type=int, default=16, help="credit window (frames)")
    proto.add_argument("--repeats", type=int, default=3, help="runs of each; best is kept")
    proto.set_defaults(func=_protocol)
    motion = bs.add_parser("motion", help="lip sync, FACS signs, identity, blinks, speed")
    motion.add_argument("--weights", default=None, help="motion weights (default: shipped)")
    motion.set_defaults(func=_motion)
    render = bs.add_parser("render", help="subject fidelity vs baselines, obedience per "
                           "cue, expression and identity judges, fps idle/busy, memory")
    render.add_argument("subject", nargs="?", default="default", help="subject name/folder")
    render.add_argument("--frames", type=int, default=10, help="frames timed per speed row")
    render.add_argument("--device", default=None, choices=("cpu", "cuda"),
                        help="cpu skips the GPU rows")
    render.set_defaults(func=_render)


def _protocol(args: argparse.Namespace) -> int:
    from backend.bench.protocol_bench import run_protocol_bench

    run_protocol_bench(frames=args.frames, size=args.size, credit=args.credit,
                       repeats=args.repeats)
    return 0


def _motion(args: argparse.Namespace) -> int:
    from backend.bench.motion_bench import run_motion_bench

    run_motion_bench(args.weights)
    return 0


def _render(args: argparse.Namespace) -> int:
    from backend.bench.render_bench import run_render_bench

    run_render_bench(args.subject, frames=args.frames, device=args.device)
    return 0
