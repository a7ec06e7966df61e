"""The shipped demo subject: resolvable by name, small, complete, and it renders a face
(alpha over the centre, sensible depth) on a fresh checkout without any download."""

from __future__ import annotations

import numpy as np
import torch

from backend.nerf.pipeline import check_conditioning, render_sequence
from backend.subject.prepare import SubjectData
from backend.subject.store import BUILTIN_SUBJECTS, load_subject, resolve_subject
from shared.camera import BlenderCamera, camera_views

FRONT = np.array([[1.0, 0, 0, 0], [0, 0, -1, -0.9], [0, 1, 0, -0.05], [0, 0, 0, 1]])


def test_default_resolves_to_the_packaged_folder() -> None:
    folder = resolve_subject("default")
    assert folder == BUILTIN_SUBJECTS["default"]
    names = {p.name for p in folder.iterdir()}
    assert {"manifest.json", "model.pt", "heldout.npz"} <= names
    assert not {"cache", "checkpoints"} & names  # training state is not shipped
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size <= 25 * 2 ** 20, size


def test_default_renders_a_face() -> None:
    subject = load_subject("default")
    pack = SubjectData.load(subject.folder / "heldout.npz")
    cond = check_conditioning(pack.landmarks[:1], None, None)
    cam = BlenderCamera(lens=50.0, resolution_x=40, resolution_y=40)
    views = camera_views(cam, FRONT, 1)
    (_, rgba, depth), = list(render_sequence(subject.model, subject.grid, views, cond))
    (_, again, _), = list(render_sequence(subject.model, subject.grid, views, cond))
    assert np.array_equal(rgba, again)  # deterministic
    centre = rgba[17:23, 17:23, 3]
    assert centre.mean() > 200  # the face is opaque
    d = depth[17:23, 17:23]
    assert 800 < np.median(d) < 1000  # ~0.9 m from the camera, in millimetres


def test_default_opens_its_mouth_when_told() -> None:
    """The product path: ARKit jawOpen retargeted onto the subject's neutral, rendered, and
    re-tracked with the shared tracker: the rendered mouth must open with the command."""
    from backend.subject.conditioning import render_conditioning
    from backend.subject.train import render_frame
    from backend.tracking.face_tracker import track_faces
    from shared.blendshapes import ARKIT_BLENDSHAPES
    from shared.landmarks import mouth_opening

    subject = load_subject("default")
    pack = SubjectData.load(subject.folder / "heldout.npz")
    weights = np.zeros((2, len(ARKIT_BLENDSHAPES)), np.float32)
    weights[1, ARKIT_BLENDSHAPES.index("jawOpen")] = 0.7
    cond = render_conditioning({"blendshapes": weights}, subject.manifest)
    frames = []
    for i in range(2):
        img = render_frame(subject.model, subject.grid, pack, 0, torch.device("cpu"),
                           cond.landmarks[i], cond.blendshapes[i])
        frames.append((img * 255 + 0.5).clip(0, 255).astype(np.uint8))
    tracked = track_faces(np.stack(frames), static=True, progress=False)
    closed, opened = mouth_opening(tracked.landmarks)
    assert np.isfinite([closed, opened]).all()  # a face is found in both renders
    assert opened > closed + 0.05, (closed, opened)
