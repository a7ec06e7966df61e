"""``facecast`` command line: one subcommand per job the product does.

Each subcommand lives in its own module and registers itself through ``add_parser``;
this file only wires them together and turns :class:`FacecastError` into a clear
message and exit code 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from shared import __version__
from shared.errors import FacecastError

from .commands import (
    animate_cmd,
    bench_cmd,
    demo_cmd,
    info_cmd,
    keys_cmd,
    motion_cmd,
    render_cmd,
    serve_cmd,
    subject_cmd,
)

COMMANDS = (demo_cmd, serve_cmd, info_cmd, keys_cmd, animate_cmd, motion_cmd, subject_cmd,
            render_cmd, bench_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecast", description="Voice + emotion keys -> facial animation and "
        "photoreal NeRF frames for Blender.")
    parser.add_argument("--version", action="version", version=f"facecast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        return int(args.func(args) or 0)
    except FacecastError as exc:
        print(f"facecast: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facecast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
