"""The demo's defaults: an emotion track that really changes, a camera that frames the
subject's box from the front."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from backend.demo.defaults import default_emotion_track
from backend.subject.framing import HEAD_FRAME_HI, HEAD_FRAME_LO, front_camera
from shared.camera import camera_from_dict, camera_views
from shared.emotions import EMOTIONS, parse_emotion_string, sample_emotion_track
from shared.landmarks import to_blender_axes


@pytest.mark.parametrize("n_frames", [40, 100, 750])
def test_default_track_parses_and_visits_four_emotions(n_frames: int) -> None:
    keys = parse_emotion_string(default_emotion_track(n_frames))
    assert keys[0].frame == 0 and keys[-1].frame < n_frames
    weights, intensity = sample_emotion_track(keys, 0, n_frames)
    dominant = {EMOTIONS[i] for i in weights[intensity > 0.5].argmax(1)}
    assert {"happy", "surprised", "angry", "sad"} <= dominant


def test_front_camera_frames_the_head_region() -> None:
    box_lo, box_hi = (-0.26, -0.42, -0.17), (0.26, 0.21, 0.14)  # a bust
    manifest = {"camera": {"k": [[500.0, 0, 256], [0, 500.0, 256], [0, 0, 1]], "width": 512,
                           "height": 512},
                "canonical_space": {"box_lo": box_lo, "box_hi": box_hi}}
    cam, matrix = camera_from_dict(front_camera(manifest, 128))
    (view,) = camera_views(cam, matrix, 1)
    corners = np.array(list(itertools.product(*zip(HEAD_FRAME_LO, HEAD_FRAME_HI,
                                                    strict=True))))
    pixels, depth = view.project(to_blender_axes(corners))  # head at origin facing -Y
    assert np.all(depth > 0.1), "the whole box must be in front of the camera"
    assert np.all((pixels >= -1) & (pixels <= 129)), pixels
    span = pixels.max(0) - pixels.min(0)
    assert span.max() > 100, "the head fills most of the frame"
    nose = view.project(to_blender_axes(np.array([0.0, 0.0, 0.1])))[0]
    assert abs(nose[0] - 64) < 1, "the face is centred left-right"


@pytest.mark.parametrize("n_frames", range(1, 12))
def test_default_track_has_one_key_per_frame_on_any_length(n_frames: int) -> None:
    """A 0.1 s line (3 frames) used to put two keys on one frame and fail with an
    emotion-key error the user never gave."""
    from shared.emotions import validate_track

    keys = validate_track(parse_emotion_string(default_emotion_track(n_frames)))
    assert keys[0].frame == 0 and keys[-1].frame <= max(n_frames - 1, 0)
