"""``facecast`` command line: one subcommand per job the product does.

Each subcommand lives in its own module and registers itself through ``add_parser``;
this file only wires them together and turns :class:`FacecastError` — and the file
system's errors a user can cause (disk full, read-only folder, permission denied) — into
one clear line and exit code 2 instead of a traceback (``-v`` adds the traceback).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import traceback
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
    verify_cmd,
)

COMMANDS = (demo_cmd, serve_cmd, info_cmd, keys_cmd, animate_cmd, motion_cmd, subject_cmd,
            render_cmd, verify_cmd, bench_cmd)


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line error: a missing or malformed argument is
    ``facecast: error: <what> — <where to look>``, like every other failure."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"facecast: error: {self.prog}: {message} — see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    except BrokenPipeError:  # `facecast subject info x | head`: the reader has enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"facecast: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facecast: interrupted", file=sys.stderr)
        return 130


def os_error_message(exc: OSError) -> str:
    """One line naming the file and what to do, for errors of the file system."""
    where = exc.filename if exc.filename is not None else "a file"
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the device while writing {where} — free some space or "
                "write to another folder (nothing finished was lost; run again to continue)")
    if code == errno.EROFS:
        return f"{where} is on a read-only file system — write to another folder"
    if code in (errno.EACCES, errno.EPERM):
        return (f"permission denied for {where} — choose a folder you can write, or fix its "
                "permissions")
    if code == errno.ENOENT:
        return f"{where} does not exist — check the path"
    if code in (errno.EISDIR, errno.ENOTDIR):
        return f"{where}: {exc.strerror} — check the path"
    if code == errno.EFBIG:
        return f"{where} would be larger than this system allows — write to another folder"
    reason = exc.strerror or exc.__class__.__name__
    return f"{reason}: {where} — check the path and the device, then try again"


if __name__ == "__main__":
    sys.exit(main())
