"""``facecast bench``: benchmarks that print the numbers docs/BENCHMARKS.md reports."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure speed and quality; prints a table")
    bs = p.add_subparsers(dest="bench", required=True, metavar="WHAT")
    proto = bs.add_parser("protocol", help="protocol vs raw ZeroMQ throughput and latency")
    proto.add_argument("--frames", type=int, default=400, help="frames per stream")
    proto.add_argument("--size", type=int, default=512, help="frame side (RGBA float16)")
    proto.add_argument("--credit", type=int, default=16, help="credit window (frames)")
    proto.add_argument("--repeats", type=int, default=3, help="runs of each; best is kept")
    proto.set_defaults(func=_protocol)
    fuzz = bs.add_parser("fuzz", help="the backend under hostile load: floods, slow "
                         "readers, credit extremes, takeover attempts, many clients")
    fuzz.add_argument("--messages", type=int, default=10_000,
                      help="unsigned and signed hostile messages (each)")
    fuzz.add_argument("--slow-frames", type=int, default=2500,
                      help="frames streamed to the slow reader")
    fuzz.add_argument("--clients", type=int, default=8, help="clients in the job mix")
    fuzz.add_argument("--synthetic", action="store_true",
                      help="the job mix runs synthetic_frames jobs instead of render + animate")
    fuzz.set_defaults(func=_fuzz)
    motion = bs.add_parser("motion", help="lip sync, FACS signs, identity, blinks, speed")
    motion.add_argument("--weights", default=None, help="motion weights (default: shipped)")
    motion.add_argument("--speech", action="store_true",
                        help="only the lip-sync rows: real clips, espeak sentences, phone "
                             "timing, speed and memory with the recogniser")
    motion.set_defaults(func=_motion)
    emo = bs.add_parser("emotion", help="'auto' emotion from the voice: held-out acted "
                        "speech (confusion vs chance and the old rule), real voices vs the "
                        "FER judge on their video")
    emo.add_argument("--recordings", type=int, default=60,
                     help="held-out acted recordings of 4 lines (default 60)")
    emo.add_argument("--seed", type=int, default=1, help="random seed of the held-out set")
    emo.add_argument("--no-real", action="store_true", help="skip the real-voice rows")
    emo.add_argument("--feature-choice", action="store_true",
                     help="also train on raw vs recording-relative features and compare "
                          "them (~3 min)")
    emo.set_defaults(func=_emotion)
    render = bs.add_parser("render", help="subject fidelity vs baselines, obedience per "
                           "cue, expression and identity judges, fps idle/busy, memory")
    render.add_argument("subject", nargs="?", default="default", help="subject name/folder")
    render.add_argument("--frames", type=int, default=10, help="frames timed per speed row")
    render.add_argument("--device", default=None, choices=("cpu", "cuda"),
                        help="cpu skips the GPU rows")
    render.set_defaults(func=_render)
    eng = bs.add_parser("engine", help="render engine: ops or kernels per frame, fps at "
                        "256/512/1024, training steps/s, eager beside fused")
    eng.add_argument("subject", nargs="?", default="default", help="subject name/folder")
    eng.add_argument("--sizes", default="256,512,1024", help="frame sides, comma-separated")
    eng.add_argument("--frames", type=int, default=4, help="frames timed at 256^2 (fewer "
                     "at larger sizes on CPU, 5x more on CUDA)")
    eng.add_argument("--device", default=None, choices=("cpu", "cuda"))
    eng.add_argument("--threads", type=int, default=2, help="CPU threads")
    eng.add_argument("--compile", action="store_true",
                     help="also time the torch.compile engine (compiles first: minutes)")
    eng.add_argument("--train-steps", type=int, default=3, help="timed training steps")
    eng.set_defaults(func=_engine)
    cluster = bs.add_parser("cluster", help="render farm (Ray actors) vs the local executor")
    cluster.add_argument("subject", nargs="?", default="default", help="subject name/folder")
    cluster.add_argument("--actors", default="1,2,4", help="actor counts, comma-separated")
    cluster.add_argument("--frames", type=int, default=32, help="frames per timed render")
    cluster.add_argument("--size", type=int, default=128, help="frame side in pixels")
    cluster.add_argument("--chunk", type=int, default=4, help="frames per chunk")
    cluster.set_defaults(func=_cluster)
    cov = bs.add_parser("coverage", help="which emotions each real clip's footage covers, "
                        "beside the FER2013 judge on the same footage (tracking only)")
    cov.add_argument("--data", type=Path, default=None,
                     help="the real data folder (default: ../shared/data)")
    cov.set_defaults(func=_coverage)
    keyed = bs.add_parser("keyed", help="keyed emotions through animate -> render -> "
                          "the FER2013 judge: lift above the neutral take")
    keyed.add_argument("subject", nargs="?", default="default", help="subject name/folder")
    keyed.add_argument("--audio", type=Path, default=None,
                       help="speech file (default: ../shared/data/speech/eng.wav)")
    keyed.add_argument("--frames", type=int, default=24, help="frames per take")
    keyed.add_argument("--start", type=float, default=2.0,
                       help="audio seconds at the first frame (default 2: mid-speech)")
    keyed.add_argument("--size", type=int, default=256, help="frame side in pixels")
    keyed.add_argument("--keep", type=Path, default=None,
                       help="keep the animations and frames in this folder")
    keyed.set_defaults(func=_keyed)
    prov = bs.add_parser("provenance", help="watermark robustness, cost, false positives; "
                         "C2PA cost")
    prov.add_argument("--frames", type=int, default=12,
                      help="held-out frames rendered per size (video: 4x interpolated)")
    fp_help = ("real frames the payload detector checks for false positives, spread over "
               "every clip (default 400; 0: every frame; the presence mark: every frame)")
    prov.add_argument("--fp-frames", type=int, default=400, help=fp_help)
    prov.add_argument("--data", type=Path, default=None,
                      help="the real data folder (default: ../shared/data)")
    prov.set_defaults(func=_provenance)


def _protocol(args: argparse.Namespace) -> int:
    from backend.bench.protocol_bench import run_protocol_bench

    run_protocol_bench(frames=args.frames, size=args.size, credit=args.credit,
                       repeats=args.repeats)
    return 0


def _fuzz(args: argparse.Namespace) -> int:
    from backend.bench.fuzz_bench import run_fuzz_bench

    result = run_fuzz_bench(messages=args.messages, slow_frames=args.slow_frames,
                            clients=args.clients, real_jobs=not args.synthetic)
    return 0 if result.alive and result.frames_lost() == 0 else 1


def _motion(args: argparse.Namespace) -> int:
    from backend.bench.motion_bench import run_motion_bench

    run_motion_bench(args.weights, speech_only=args.speech)
    return 0


def _emotion(args: argparse.Namespace) -> int:
    from backend.bench.emotion_bench import run_emotion_bench

    if args.recordings < 1:
        from shared.errors import InputError

        raise InputError(f"--recordings {args.recordings} is too few", "use at least 1")
    run_emotion_bench(args.recordings, args.seed, real=not args.no_real,
                      feature_choice=args.feature_choice)
    return 0


def _provenance(args: argparse.Namespace) -> int:
    from backend.bench.provenance_bench import run_provenance_bench

    run_provenance_bench(frames=args.frames, fp_frames=args.fp_frames, data=args.data)
    return 0


def _coverage(args: argparse.Namespace) -> int:
    from backend.bench.coverage_bench import run_coverage_bench

    run_coverage_bench(args.data)
    return 0


def _keyed(args: argparse.Namespace) -> int:
    from backend.bench.keyed_bench import run_keyed_bench

    run_keyed_bench(args.subject, args.audio, frames=args.frames, size=args.size,
                    start=args.start, keep=args.keep)
    return 0


def _render(args: argparse.Namespace) -> int:
    from backend.bench.render_bench import run_render_bench

    run_render_bench(args.subject, frames=args.frames, device=args.device)
    return 0


def _engine(args: argparse.Namespace) -> int:
    from backend.bench.engine_bench import run_engine_bench
    from shared.errors import InputError

    try:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    except ValueError as exc:
        raise InputError(f"--sizes {args.sizes!r} is not a list of numbers",
                         "pass e.g. --sizes 256,512") from exc
    if not sizes or min(sizes) < 8 or args.frames < 1 or args.threads < 1:
        raise InputError("--sizes (>= 8), --frames and --threads must be positive",
                         "fix the options")
    run_engine_bench(args.subject, sizes, frames=args.frames, device=args.device,
                     threads=args.threads, compile=args.compile,
                     train_steps=args.train_steps)
    return 0


def _cluster(args: argparse.Namespace) -> int:
    from backend.bench.cluster_bench import run_cluster_bench
    from shared.errors import InputError

    try:
        actors = tuple(int(a) for a in args.actors.split(","))
    except ValueError as exc:
        raise InputError(f"--actors {args.actors!r} is not a list of numbers",
                         "pass e.g. --actors 1,2,4") from exc
    if not actors or min(actors) < 1 or args.frames < 1 or args.size < 8:
        raise InputError("--actors, --frames and --size must be positive (size >= 8)",
                         "fix the options")
    run_cluster_bench(args.subject, actors, frames=args.frames, size=args.size,
                      chunk=args.chunk)
    return 0
