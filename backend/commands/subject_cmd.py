"""``facecast subject build CLIP --name NAME --consent "…"``: capture a person as a
renderable subject; ``subject list``, ``subject info NAME`` and ``subject consent NAME``
show subjects and record the performer's consent (``backend.provenance.consent``);
``subject coverage CLIP`` tracks a clip (no training) and says which keyed emotions its
footage covers (``backend.subject.coverage``), as ``build`` does before it trains.

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

from backend.atomic_file import check_writable
from backend.threads import add_threads_argument
from shared.errors import InputError

log = logging.getLogger(__name__)

#: Below this many steps a subject renders as fog, not a face, so a smaller budget warns
#: (docs/INTERNALS.md, "subject build").
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
    b.add_argument("--mesh-warp", action="store_true",
                   help="also move sample points with the tracked face mesh: lip corners "
                        "and brows the footage never showed follow its geometry further, "
                        "but a commanded jaw drop opens about half as far (d6)")
    b.add_argument("--refine-cameras", action="store_true",
                   help="also learn head-pose and focal corrections: fits the footage "
                        "closer but renders new poses worse (d6: training frames +1.6 dB, "
                        "held-out -1.6 dB); for footage whose tracking is poor")
    add_threads_argument(b)
    _consent_args(b)
    b.set_defaults(func=_build)
    c = ss.add_parser("consent", help="record the performer's consent on a built subject")
    c.add_argument("subject", help="subject name or folder")
    _consent_args(c)
    c.add_argument("--replace", action="store_true",
                   help="replace a different existing record (kept in consent_history)")
    c.set_defaults(func=_consent)
    i = ss.add_parser("info", help="what a subject is: footage, training, consent")
    i.add_argument("subject", help="subject name or folder")
    i.set_defaults(func=_info)
    e = ss.add_parser("evaluate", help="measure a subject as it ships (held-out and "
                      "training-frame PSNR/SSIM, the bench's numbers) and record it")
    e.add_argument("subject", help="subject name or folder")
    e.set_defaults(func=_evaluate)
    ls = ss.add_parser("list", help="the subjects installed here, with their consent")
    ls.set_defaults(func=_list)
    cv = ss.add_parser("coverage", help="which keyed emotions a clip's footage covers "
                                        "(tracking only, no training)")
    cv.add_argument("clip", type=Path, help="video of one person facing the camera")
    cv.add_argument("--res", type=int, default=256, help="tracking resolution (longer side)")
    cv.add_argument("--max-frames", type=int, default=None, help="use the first N frames")
    cv.add_argument("--json", action="store_true", help="print the coverage as JSON")
    cv.set_defaults(func=_coverage)


def _consent_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--consent", default=None, metavar="TEXT",
                   help="what the person filmed agreed to (who, which uses, when); "
                        "required to build")
    p.add_argument("--consent-file", type=Path, default=None, metavar="FILE",
                   help="the consent statement as a UTF-8 text file")


def _consent(args: argparse.Namespace) -> int:
    from backend.provenance.consent import (
        consent_line,
        make_consent,
        read_statement,
        record_consent,
    )
    from backend.subject.store import read_manifest, resolve_subject

    statement, file = read_statement(args.consent, args.consent_file)
    folder = resolve_subject(args.subject)
    source = read_manifest(folder).get("source") or {}
    m = record_consent(folder, make_consent(statement, source.get("clip"), file,
                                            source.get("sha256")), replace=args.replace)
    print(f"subject {m.get('name')!r} ({folder}): {consent_line(m)}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from backend.provenance.consent import consent_line, consent_of
    from backend.subject.coverage import subject_coverage
    from backend.subject.store import read_manifest, resolve_subject

    folder = resolve_subject(args.subject)
    m = read_manifest(folder)
    src, ev, tr = m.get("source") or {}, m.get("evaluation"), m.get("training") or {}
    print(f"subject {m.get('name')!r} in {folder}\n"
          f"  built {m.get('created', '?')} from {src.get('clip')} (sha256 "
          f"{str(src.get('sha256'))[:16]}…, {src.get('frames_used')} frames)\n"
          f"  trained {tr.get('steps')} steps on {tr.get('device')}; "
          f"{fidelity_line(ev)}\n"
          f"  {consent_line(m)}")
    found = subject_coverage(folder, m)
    if found is None:
        print("  expression coverage: unknown (the subject keeps no training frames)")
    else:
        cov, where = found
        if where != "manifest":
            print(f"  (measured now on {where}: a sample of the footage; subjects built "
                  "by this Facecast store the whole footage's coverage)")
        print("\n".join("  " + line for line in cov.lines()))
    c = consent_of(m)
    if c is not None:
        print(f"  consent statement (sha256 {c.sha256}), recorded {c.recorded} for "
              f"{c.source_clip} (sha256 {c.source_sha256}):\n    "
              + c.statement.replace("\n", "\n    "))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from backend.subject.build import record_evaluation
    from backend.subject.store import resolve_subject

    folder = resolve_subject(args.subject)
    check_writable(folder / "manifest.json", "manifest")
    ev = record_evaluation(folder)["evaluation"]
    print(f"subject {args.subject!r}: {fidelity_line(ev)}")
    return 0


def fidelity_line(ev: dict) -> str:
    """The subject's measured fidelity, as ``subject info`` and ``evaluate`` print it."""
    if not ev:
        return "fidelity not measured (run `facecast subject evaluate NAME`)"
    tr = ev.get("training_frames") or {}
    return (f"held-out PSNR {ev.get('psnr')} dB, SSIM {ev.get('ssim')} "
            f"({len(ev.get('frames') or [])} frames; training frames {tr.get('psnr')} dB)")


def _list(args: argparse.Namespace) -> int:
    from backend.provenance.consent import consent_line, installed_subjects

    rows = installed_subjects()
    for name, folder, manifest in rows:
        print(f"{name:16s} {consent_line(manifest)}   ({folder})")
    if not rows:
        print("no subjects installed (build one with `facecast subject build`)")
    return 0


def _coverage(args: argparse.Namespace) -> int:
    import time
    from fractions import Fraction

    from backend.subject.coverage import footage_coverage
    from backend.subject.prepare import track_face

    t0 = time.perf_counter()
    face = track_face(args.clip, res=args.res, max_frames=args.max_frames)
    fps = Fraction(face.tracks.fps)
    cov = footage_coverage(face.face_landmarks[: face.n_train], float(fps))
    if args.json:
        print(json.dumps({"clip": args.clip.name, **cov.to_dict()}, indent=1))
    else:
        print(f"{args.clip.name}: tracked {len(face.keep)} frames in "
              f"{time.perf_counter() - t0:.1f} s")
        print("\n".join(cov.lines()))
        print(cov.summary())
    return 0


def print_coverage(cov) -> None:
    """``subject build``'s report after tracking, before training."""
    print("\n".join(cov.lines()))
    weak = [e for e in cov.emotions if e != "neutral" and cov.emotions[e].level != "covered"]
    if weak:
        print(f"renders of {', '.join(weak)} will be weak or show the nearest expression "
              "the footage has; see docs/CAPTURE.md for what to film", flush=True)


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

    from backend.media.decode import probe_video
    from backend.nerf.model import CURRENT
    from backend.provenance.consent import make_consent, read_statement, record_consent
    from backend.subject.build import build_subject
    from backend.subject.store import default_subject_dir
    from backend.subject.train import TrainConfig
    from backend.threads import set_threads

    # Everything the user named is checked before any work starts (and before any
    # warning about the budget): name, consent, clip, output folder, options.
    if not args.name.strip():
        raise InputError("the subject name is empty", "pass --name NAME (e.g. --name alice)")
    statement, consent_file = read_statement(args.consent, args.consent_file)
    out = args.out or default_subject_dir(args.name)
    if not (args.resume and (out / "cache" / "data.npz").is_file()):
        probe_video(args.clip)  # "video file not found" / "cannot read video" / no stream
    check_writable(out, "subject folder", folder=True)
    for flag, value, lo, hi in (("--max-frames", args.max_frames, 2, 10**7),
                                ("--plane-res", args.plane_res, 8, 4096)):
        if value is not None and not lo <= value <= hi:
            raise InputError(f"{flag} {value} is out of range", f"use {lo}..{hi}")
    consent = make_consent(statement, args.clip, consent_file)
    threads = set_threads(args.threads)
    steps, minutes, cpu_minutes = check_budget(args.steps, args.minutes, args.cpu_minutes,
                                               args.device)
    cfg = dataclasses.replace(CURRENT, mesh_warp=args.mesh_warp)
    if args.plane_res:
        (_, ch), *rest = cfg.levels()
        cfg = dataclasses.replace(cfg, plane_levels=((args.plane_res, ch), *rest))
    m = build_subject(args.clip, out, name=args.name, res=args.res,
                      train=TrainConfig(steps=steps, minutes=minutes, cpu_minutes=cpu_minutes,
                                        refine_poses=args.refine_cameras),
                      model_cfg=cfg, device=args.device, resume=args.resume,
                      max_frames=args.max_frames, threads=threads,
                      on_coverage=print_coverage)
    m = record_consent(out, consent, replace=args.resume)
    print(f"subject {args.name!r} written to {out}")
    t = m["training"]
    print(json.dumps({"evaluation": m["evaluation"], "steps": t["steps"],
                      "seconds": t["seconds"], "cpu_seconds": t.get("cpu_seconds")},
                     indent=1))
    return 0
