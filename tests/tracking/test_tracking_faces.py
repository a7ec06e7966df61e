"""The face tracker on real clips (sampled frames) and on images without a face."""

from __future__ import annotations

import numpy as np
import pytest

from backend.media.decode import read_video
from backend.tracking.face_tracker import require_faces, track_faces
from shared import landmarks as L
from shared.errors import InputError
from tests.conftest import data_path


@pytest.mark.parametrize("clip", ["d12.mp4", "d14.mp4"])
def test_face_in_every_sampled_frame(clip):
    path = data_path("clips", clip)
    video = read_video(path, stride=6, max_frames=30)  # 30 frames spread over the clip
    tracks = track_faces(video.frames)
    assert len(tracks) == 30 and tracks.found.all()
    require_faces(tracks)  # must not raise
    lm = tracks.landmarks
    assert lm.shape == (30, 478, 3) and np.isfinite(lm).all()
    assert tracks.image_size == (512, 512)
    assert (lm[..., :2] > 0).all() and (lm[..., :2] < 512).all()
    # The face is a face: the subject's left eye is on the image's right, forehead above
    # chin, each iris centre between its own eye's corners (x only: d12 laughs with his
    # eyes shut, when the lid contour is flat).
    assert (lm[:, L.LEFT_EYE_OUTER, 0] > lm[:, L.RIGHT_EYE_OUTER, 0]).all()
    assert (lm[:, L.FOREHEAD, 1] < lm[:, L.CHIN, 1]).all()
    for iris, eye in ((L.RIGHT_IRIS_CENTER, "right_eye"), (L.LEFT_IRIS_CENTER, "left_eye")):
        box = lm[:, L.canonical_face().group(eye), 0]
        assert ((lm[:, iris, 0] > box.min(axis=1)) & (lm[:, iris, 0] < box.max(axis=1))).all()
    assert 40 < np.median(L.inter_ocular(lm[..., :2])) < 300  # pixels, face-sized
    assert tracks.blendshapes is None  # the legacy face mesh has no blendshape head


def test_no_face_images_are_not_found():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
              np.full((240, 320, 3), 128, np.uint8)]
    tracks = track_faces(frames, static=True)
    assert not tracks.found.any()
    assert np.isnan(tracks.landmarks).all()
    assert np.isnan(L.mouth_opening(tracks.landmarks)).all()
    with pytest.raises(InputError) as err:
        require_faces(tracks, what="test.mp4")
    assert "no face found in 2 of 2 frames" in err.value.problem and err.value.fix


def test_mixed_face_and_no_face_frames():
    face = read_video(data_path("clips", "d12.mp4"), max_frames=1).frames[0]
    flat = np.zeros_like(face)
    tracks = track_faces([face, flat, face], static=True)
    assert tracks.found.tolist() == [True, False, True]
    require_faces(tracks, min_fraction=0.6)
    with pytest.raises(InputError, match="1 of 3"):
        require_faces(tracks, min_fraction=0.9)


def test_bad_frames_are_input_errors():
    with pytest.raises(InputError):
        track_faces([np.zeros((64, 64), np.uint8)])
    with pytest.raises(InputError):
        track_faces([np.zeros((64, 64, 3), np.float32)])
    with pytest.raises(InputError):
        track_faces([np.zeros((64, 64, 3), np.uint8), np.zeros((32, 64, 3), np.uint8)])
    with pytest.raises(InputError):
        track_faces([])
