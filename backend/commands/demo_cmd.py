"""``facecast demo``: speech -> animation -> NeRF frames -> MP4 + .blend + report."""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.threads import add_threads_argument


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole product on the shipped defaults",
                       description="Speak a line (espeak-ng, bundled), animate it with an "
                       "emotion track that changes over time, render the demo subject, and "
                       "write an MP4, a .blend and a report. No network needed.")
    p.add_argument("-o", "--out", type=Path, default=Path("facecast_demo"),
                   help="output folder (default ./facecast_demo)")
    p.add_argument("--quick", action="store_true",
                   help="a shorter line at 128x128 (a smoke run: about a minute on 2 cores)")
    p.add_argument("--audio", type=Path, default=None,
                   help="speak this recording instead of the generated line")
    p.add_argument("--text", default=None, help="the line espeak-ng speaks")
    p.add_argument("--emotion", default=None,
                   help='emotion track, e.g. "0:neutral,40:angry@0.7,90:happy+surprised@0.5"')
    p.add_argument("--subject", default="default", help="subject name or folder")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--size", type=int, default=None, help="render size (default 256; 128 quick)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--no-blend", action="store_true", help="skip the .blend")
    p.add_argument("--seed", type=int, default=0)
    add_threads_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.demo.run import MAX_TEXT_CHARS, DemoOptions, run_demo
    from shared.errors import InputError

    if args.fps <= 0 or args.fps > 120:
        raise InputError(f"--fps {args.fps} is out of range", "use 1..120")
    if args.size is not None and not 32 <= args.size <= 1024:
        raise InputError(f"--size {args.size} is out of range", "use 32..1024")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads} is not a thread count", "pass 1 or more")
    if args.text is not None and args.audio is not None:
        raise InputError("--text and --audio were both given (the demo speaks the text "
                         "only when there is no recording)", "pass one of them")
    if args.text is not None and not args.text.strip():
        raise InputError("--text is empty", "give the line to speak, or leave --text out "
                         "for the demo's own line")
    if args.text is not None and len(args.text) > MAX_TEXT_CHARS:
        raise InputError(f"--text is {len(args.text)} characters; the demo speaks up to "
                         f"{MAX_TEXT_CHARS}", "shorten it, or use `facecast animate` and "
                         "`facecast render` for long lines")
    report = run_demo(DemoOptions(
        out=args.out, quick=args.quick, audio=args.audio, text=args.text,
        emotion=args.emotion, subject=args.subject, fps=args.fps, size=args.size,
        device=args.device, blend=not args.no_blend, seed=args.seed, threads=args.threads))
    print(f"facecast demo: wrote {args.out}/ in {report.steps['total']:.0f} s")
    for name, file in report.outputs.items():
        print(f"  {name:10s} {args.out / file}")
    print(f"  report     {args.out / 'report.md'}")
    return 0
