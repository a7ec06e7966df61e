"""The animation file: one layout, one writer, for ``facecast animate`` and the demo.

``.npz`` holds :meth:`Animation.to_arrays` (blendshapes with their names, landmarks, head
pose and its frame, blinks, emotion weights with their names and intensity, frame
numbers and times, fps, first frame); ``.json`` holds the same fields as nested lists.
The demo gets its animation from the ``animate`` job, whose chunks carry the per-frame
arrays only: :func:`animation_from_job` adds the frame numbers and times the job's clock
used, so both paths write the same file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from backend.atomic_file import write_atomic
from backend.audio.timing import FrameClock
from shared.errors import InputError

from .performance import Animation

SUFFIXES = (".npz", ".json")


def check_animation_path(path: str | Path) -> Path:
    """The output's name is one the writer knows (before the work)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"output {path.name!r} must end in .npz or .json",
                         "write e.g. -o anim.npz or -o anim.json")
    return path


def write_animation(path: str | Path, anim: Animation) -> Path:
    """Write ``anim`` as .npz or .json (by the suffix), atomically."""
    path = check_animation_path(path)
    if path.suffix.lower() == ".npz":
        # Built in memory first: a zip writer that fails mid-file (disk full) would
        # print a traceback from its finaliser after the clean error.
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **anim.to_arrays())
        data = buffer.getvalue()
    else:
        data = json.dumps(to_json(anim)).encode()
    return write_atomic(path, lambda f: f.write(data))


def to_json(anim: Animation) -> dict:
    """The JSON layout: same fields as the .npz, nested lists, landmarks rounded to 0.01 mm."""
    a = anim.to_arrays()
    return {"fps": str(a["fps"]), "first_frame": int(a["first_frame"]),
            "n_frames": anim.n_frames,
            "blendshape_names": list(anim.names), "emotion_names": list(a["emotion_names"]),
            "frame_numbers": a["frame_numbers"].tolist(),
            "frame_times": np.round(a["frame_times"], 6).tolist(),
            "blendshapes": np.round(a["blendshapes"], 5).tolist(),
            "landmarks": np.round(a["landmarks"], 5).tolist(),
            "head_pose": np.round(a["head_pose"], 6).tolist(),
            "head_pose_frame": str(a["head_pose_frame"]),
            "blink": np.round(a["blink"], 4).tolist(),
            "emotion_weights": np.round(a["emotion_weights"], 4).tolist(),
            "emotion_intensity": np.round(a["emotion_intensity"], 4).tolist(),
            **({"transcript": anim.meta["transcript"].to_json()}
               if anim.meta.get("transcript") else {})}


def animation_from_job(arrays: Mapping[str, np.ndarray], fps: object, sample_rate: int,
                       first_frame: int = 0, start_offset: object = 0) -> Animation:
    """An :class:`Animation` from the ``animate`` job's result arrays (its chunks joined
    in order, landmarks included): frame numbers and centre times follow from the fps,
    sample rate, first frame and start offset the job was given, as the job computed
    them (``FrameClock``)."""
    clock = FrameClock.create(fps, sample_rate, first_frame, start_offset)
    n = int(np.asarray(arrays["blendshapes"]).shape[0])
    return Animation(
        blendshapes=np.asarray(arrays["blendshapes"], np.float32),
        landmarks=np.asarray(arrays["landmarks"], np.float32),
        head_pose=np.asarray(arrays["head_pose"], np.float32),
        blink=np.asarray(arrays["blink"], np.float32),
        emotion_weights=np.asarray(arrays["emotion_weights"], np.float32),
        emotion_intensity=np.asarray(arrays["emotion_intensity"], np.float32),
        frame_numbers=np.arange(clock.first_frame, clock.first_frame + n, dtype=np.int64),
        frame_times=clock.centre_times(clock.first_frame, n),
        fps=clock.fps, first_frame=clock.first_frame)
