"""``facecast motion``: prepare the training data and train the motion model."""

from __future__ import annotations

import argparse
import shlex
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("motion", help="train the motion model (audio + emotion -> face)")
    ms = p.add_subparsers(dest="motion", required=True, metavar="WHAT")
    prep = ms.add_parser("prepare", help="track and solve the real clips; print a summary")
    prep.add_argument("--data", help="folder of clips (default ../shared/data/clips)")
    prep.set_defaults(func=_prepare)
    tr = ms.add_parser("train", help="train on the real clips + FACS priors")
    tr.add_argument("--out", required=True, help="output folder (checkpoint.pt, motion.pt)")
    tr.add_argument("--epochs", type=int, default=80, help="epochs (default 80)")
    tr.add_argument("--steps-per-epoch", type=int, default=20, help="batches per epoch")
    tr.add_argument("--batch", type=int, default=12, help="windows per batch (default 12)")
    tr.add_argument("--synth-clips", type=int, default=200,
                    help="espeak-ng clips with viseme targets of espeak's exact phones "
                         "(default 200)")
    tr.add_argument("--exact-share", type=float, default=0.5,
                    help="share of them whose phone evidence is espeak's own phones, as "
                         "aligned dialogue text gives (the rest: the phone loop's)")
    tr.add_argument("--nonspeech-clips", type=int, default=40,
                    help="tones / instrumental sounds with a resting mouth (default 40)")
    tr.add_argument("--speech-clips", default="",
                    help="comma-separated tracked clips whose mouth teaches lip sync "
                         "(default none: every real video is held out for the bench)")
    tr.add_argument("--synth-ratio", type=float, default=0.5,
                    help="share of each speech batch that is synthetic (default 0.5)")
    tr.add_argument("--real-copies", type=int, default=0,
                    help="degraded-audio copies of each real clip (default 0; e.g. 3)")
    tr.add_argument("--min-speech-share", type=float, default=0.3,
                    help="a clip whose sound is speech for less than this share of its "
                         "training part (music, silence) does not teach lip sync "
                         "(default 0.3; 0 = every clip)")
    tr.add_argument("--drop-non-speech", action="store_true",
                    help="leave such clips out instead of training their sound with a "
                         "resting mouth (the default keeps them: music must not move lips)")
    tr.add_argument("--phone-speech", default="eng,sun",
                    help="comma-separated recordings in ../shared/data/speech trained with "
                         "pocketsphinx phones -> viseme targets (default eng,sun; '' = none)")
    tr.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    tr.add_argument("--seed", type=int, default=0, help="random seed")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    tr.add_argument("--data", help="folder of clips (default ../shared/data/clips)")
    tr.add_argument("--clips", default=None, help="comma-separated clip names")
    tr.set_defaults(func=_train)
    emo = ms.add_parser("train-emotion", help="train the 'auto' emotion-from-voice "
                        "classifier on generated acted espeak-ng speech")
    emo.add_argument("--out", default=None,
                     help="weights file (default: the shipped backend/motion/weights/"
                          "emotion_audio.json)")
    emo.add_argument("--recordings", type=int, default=320,  # emotion_train.TRAINING_RECORDINGS
                     help="generated recordings of 4 lines each (default 320)")
    emo.add_argument("--seed", type=int, default=0, help="random seed")
    emo.set_defaults(func=_train_emotion)


def _names(text: str | None) -> tuple[str, ...]:
    from backend.motion.data import SPEECH_CLIPS

    return tuple(n.strip() for n in text.split(",") if n.strip()) if text else SPEECH_CLIPS


def _prepare(args: argparse.Namespace) -> int:
    import numpy as np

    from backend.motion.data import load_clips

    for c in load_clips(data_dir=args.data, progress=True):
        print(f"{c.name}: {c.n_frames} frames at {c.fps} fps, train {c.split}, held out "
              f"{c.n_frames - c.split}, speech {100 * c.vad.mean():.0f}%, mean jawOpen "
              f"{np.nanmean(c.blendshapes[:, 17]):.2f}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from backend.motion.data import load_clips
    from backend.motion.train import TrainConfig, train

    if (args.epochs < 1 or args.steps_per_epoch < 1 or args.batch < 1 or args.synth_clips < 0
            or args.real_copies < 0 or not 0.0 <= args.synth_ratio <= 0.9
            or args.weight_decay < 0 or not 0.0 <= args.min_speech_share <= 1.0
            or args.nonspeech_clips < 0 or not 0.0 <= args.exact_share <= 1.0):
        from shared.errors import InputError

        raise InputError("a training option is out of range",
                         "--epochs/--steps-per-epoch/--batch >= 1, --synth-clips/--real-copies/"
                         "--weight-decay >= 0, --synth-ratio in [0, 0.9], "
                         "--min-speech-share and --exact-share in [0, 1], "
                         "--nonspeech-clips >= 0")
    from backend.atomic_file import check_writable

    check_writable(args.out, "output folder", folder=True)  # before minutes of tracking
    clips = load_clips(_names(args.clips), data_dir=args.data, progress=True)
    cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, seed=args.seed,
                      batch=args.batch, synth_clips=args.synth_clips, synth_ratio=args.synth_ratio,
                      real_copies=args.real_copies, weight_decay=args.weight_decay,
                      min_speech_share=args.min_speech_share,
                      nonspeech_rest=not args.drop_non_speech,
                      phone_speech=tuple(n.strip() for n in args.phone_speech.split(",")
                                         if n.strip()),
                      speech_clips=tuple(n.strip() for n in args.speech_clips.split(",")
                                         if n.strip()),
                      exact_share=args.exact_share, nonspeech_clips=args.nonspeech_clips)
    command = "facecast " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    model = train(clips, args.out, cfg, resume=args.resume, command=command)
    print(f"wrote {args.out}/motion.pt; last epoch: {model.meta.get('final')}")
    return 0


def _train_emotion(args: argparse.Namespace) -> int:
    from pathlib import Path

    from backend.atomic_file import check_writable
    from backend.motion.emotion_from_audio import WEIGHTS_FILE
    from backend.motion.emotion_train import train_emotion
    from backend.progress import progress

    if args.recordings < 8:
        from shared.errors import InputError

        raise InputError(f"--recordings {args.recordings} is too few", "use at least 8")
    out = Path(args.out) if args.out else WEIGHTS_FILE
    check_writable(out, "weights file")
    with progress(args.recordings, "acted speech", unit="recording") as bar:
        train_emotion(out, args.recordings, args.seed, progress=lambda i, n: bar.update(1))
    print(f"wrote {out}")
    return 0
