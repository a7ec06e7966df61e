"""Where subjects live, their manifest, and loading one for rendering.

A subject is a folder::

    NAME/manifest.json      versioned description (this module's MANIFEST_VERSION)
    NAME/model.pt           weights (fp16) + occupancy grid + config: all rendering needs
    NAME/background.png     the source clip's background plate (for compositing tests)
    NAME/heldout.npz        up to 24 held-out frames + conditioning (for the benchmark)
    NAME/cache/data.npz     prepared training data      (not needed to render)
    NAME/checkpoints/       full-precision training state for --resume (not needed)

A subject reference is a folder path, or a name looked up in ``$FACECAST_SUBJECTS`` and
``~/.local/share/facecast/subjects``, then among the built-in subjects: ``default``, the
demo subject, ships INSIDE this package (``backend/subject/default/``: manifest, fp16
weights, background plate; a few MB) so a fresh install renders without any download.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shared.errors import InputError

from ..atomic_file import write_atomic
from ..nerf.components.occupancy import OccupancyGrid
from ..nerf.model import FaceNeRF, ModelConfig

MANIFEST_FORMAT = "facecast.subject"
MANIFEST_VERSION = 3  # 3: mesh warp, blendshapes, torso field, refined camera
#: Versions this Facecast reads (2: attention lattice + 1-layer MLP + hull, a bust rigid
#: with the head; v1 weights cannot load).
READABLE_VERSIONS = (2, 3)
BUILTIN_SUBJECTS = {"default": Path(__file__).resolve().parent / "default"}


def subject_roots() -> list[Path]:
    roots = []
    if os.environ.get("FACECAST_SUBJECTS"):
        roots.append(Path(os.environ["FACECAST_SUBJECTS"]).expanduser())
    roots.append(Path.home() / ".local" / "share" / "facecast" / "subjects")
    return roots


def default_subject_dir(name: str) -> Path:
    return subject_roots()[0] / name


def resolve_subject(ref: str | Path) -> Path:
    """A subject folder from a path or a name; InputError naming what exists otherwise."""
    p = Path(ref).expanduser()
    if (p / "manifest.json").is_file():
        return p
    for root in subject_roots():
        if (root / str(ref) / "manifest.json").is_file():
            return root / str(ref)
    builtin = BUILTIN_SUBJECTS.get(str(ref))
    if builtin is not None and (builtin / "manifest.json").is_file():
        return builtin
    known = sorted({d.name for r in subject_roots() if r.is_dir() for d in r.iterdir()
                    if (d / "manifest.json").is_file()}
                   | {n for n, d in BUILTIN_SUBJECTS.items() if (d / "manifest.json").is_file()})
    raise InputError(f"unknown subject {str(ref)!r}",
                     "build it with `facecast subject build CLIP --name NAME` or use one of: "
                     + (", ".join(known) if known else "(none installed)"))


def write_json_atomic(path: Path, data: dict) -> None:
    write_atomic(path, lambda f: f.write(json.dumps(data, indent=1).encode()))


def save_torch_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, lambda f: torch.save(obj, f))


def read_manifest(folder: Path) -> dict:
    try:
        m = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"subject manifest in {folder} is unreadable: {exc}",
                         "rebuild the subject with `facecast subject build`") from exc
    if m.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{folder} is not a Facecast subject", "pass a subject folder")
    if m.get("version") not in READABLE_VERSIONS:
        raise InputError(f"subject manifest version {m.get('version')} is not supported",
                         f"rebuild the subject (this Facecast reads versions "
                         f"{', '.join(map(str, READABLE_VERSIONS))})")
    return m


def export_model(path: Path, model: FaceNeRF, grid: OccupancyGrid) -> None:
    """The shipped weights: fp16 tensors (half the size, no visible loss) + grid."""
    state = {k: (v.half() if v.is_floating_point() else v)
             for k, v in model.state_dict().items()}
    blob = {"config": model.cfg.to_dict(), "state": state, "grid": grid.state()}
    if model.torso_grid is not None:
        blob["torso_grid"] = model.torso_grid.state()
    save_torch_atomic(path, blob)


@dataclass
class Subject:
    folder: Path
    manifest: dict
    model: FaceNeRF
    grid: OccupancyGrid

    @property
    def uses_blendshapes(self) -> bool:
        return bool(self.model.cfg.use_blendshapes)


def load_subject(ref: str | Path, device: str | torch.device = "cpu") -> Subject:
    folder = resolve_subject(ref)
    manifest = read_manifest(folder)
    try:
        blob = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise InputError(f"subject weights in {folder} are missing or damaged: {exc}",
                         "rebuild the subject (or finish training: --resume)") from exc
    model = FaceNeRF(ModelConfig.from_dict(blob["config"]))
    model.load_state_dict({k: v.float() for k, v in blob["state"].items()})
    model.eval().to(device)
    grid = OccupancyGrid.from_state(blob["grid"], model.box_lo, model.box_hi).to(device)
    if model.torso is not None and "torso_grid" in blob:
        model.torso_grid = OccupancyGrid.from_state(
            blob["torso_grid"], model.torso.box_lo, model.torso.box_hi).to(device)
    return Subject(folder, manifest, model, grid)
