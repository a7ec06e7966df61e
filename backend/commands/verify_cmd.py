"""``facecast verify FILE...``: is this a Facecast render, whose face, and is it intact?

Per file (PNG, JPEG, MP4 and other images/videos; folders are searched): the invisible
watermark (the presence mark, readable down to 64 px and after re-encodes; the grid
mark of frames under 160 px, readable after JPEG q50; and the payload naming subject
and render, when readable), the C2PA manifest (none / valid /
trusted / invalid / damaged) and the subject.

Exit codes answer "is this a Facecast render?" for scripts (over several files the
worst wins: 3, then 2, then 1):
  0  a Facecast render: the watermark is found, or C2PA credentials trusted here
     declare it synthetic
  1  no sign of Facecast: no watermark and no trusted synthetic declaration (a real
     picture, or one edited past recognition)
  2  unreadable: not an image or video that can be read
  3  damaged or tampered: a C2PA manifest is broken or no longer matches its file
``--json`` prints the same per-file report and the exit code.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shared.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="check files for the Facecast watermark and C2PA credentials",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help="files or folders")
    p.add_argument("--json", action="store_true", help="one JSON report for scripts")
    p.add_argument("--max-frames", type=int, default=300,
                   help="video frames checked per file (default 300)")
    p.add_argument("--trust", type=Path, default=None,
                   help="PEM file of trust anchors for C2PA signers (default: this "
                        "installation's own root)")
    p.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    from backend.provenance.verify import exit_code, verify_paths

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise InputError(f"no such file or folder: {', '.join(missing)}",
                         "pass existing files or folders")
    if args.max_frames < 1:
        raise InputError(f"--max-frames {args.max_frames} is not positive",
                         "check at least 1 frame")
    anchors = None
    if args.trust is not None:
        try:
            anchors = args.trust.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read --trust {args.trust}: {exc}",
                             "pass a PEM file of CA certificates") from exc
    reports = verify_paths(args.paths, max_frames=args.max_frames, trust_anchors=anchors)
    if not reports:
        raise InputError("no images or videos found in the folders given",
                         "pass PNG, JPEG or MP4 files, or folders holding them")
    code = exit_code(reports)
    if args.json:
        print(json.dumps({"files": [r.to_dict() for r in reports], "exit_code": code},
                         indent=1))
        return code
    for r in reports:
        print("\n".join(r.lines()))
    from backend.provenance.verify import EXIT_CODES

    marked = sum(r.watermark is not None and r.watermark.found for r in reports)
    pictures = sum(r.kind in ("image", "video") for r in reports)
    print(f"{marked}/{pictures} pictures carry the Facecast watermark"
          + (f"; {len(reports) - pictures} other files" if len(reports) > pictures else ""))
    print(f"exit {code}: {EXIT_CODES[code]}")
    return code
