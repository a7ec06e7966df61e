"""Imports point forward: every module's imports (top-level, inside functions and under
``TYPE_CHECKING`` alike, read with ``ast``) go to its own stage or an earlier one, never
to a later stage and never into the diagnostics wing; the backend's packages form no
cycle; the Blender add-on's modules form no cycle either. The stages and the wing are
drawn in ``docs/ARCHITECTURE.md``.

A new backend package or top-level module must be placed in :data:`STAGES` (or
:data:`DIAGNOSTICS`) before this test passes - that is the moment to decide where it sits.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Package or module -> stage (earlier stages never import later ones). The longest
#: matching prefix decides. Inside a stage, a fraction orders its parts.
STAGES: dict[str, float] = {
    # 0: what everything may use: the wire (shared/) and the backend's own small helpers
    "shared": 0, "backend.atomic_file": 0, "backend.progress": 0,
    "backend.threads": 0, "backend.cache_root": 0,
    # 1: inputs - sound, speech (phones, viseme classes), media files (video and audio
    # tracks read, MP4 and frame files written), faces in video
    "backend.audio": 1, "backend.speech": 1, "backend.media": 1, "backend.tracking": 1,
    # 2: motion - audio + emotion -> landmarks, blendshapes, head pose, blinks
    "backend.motion": 2,
    # 3: the field (tri-plane NeRF): raw frames from a conditioning and cameras - its
    # components (rays, occupancy, sampler, renderer, lattice), then the fields' parts,
    # then the model, its render paths (reference, fused engine), views and pipeline
    "backend.nerf.components": 3, "backend.nerf.fields": 3.1, "backend.nerf": 3.2,
    # 4: subjects (build, store, conditioning contract) and their provenance
    "backend.subject": 4, "backend.provenance": 4,
    # 5: the render service: request in, stamped and signed frames out
    "backend.render": 5,
    # 6-8: serving - the render farm, the jobs, the ZeroMQ server
    "backend.cluster": 6, "backend.jobs": 7, "backend.server": 8,
    # 9-10: the user's doors - commands, the demo, the CLI entry point
    "backend.commands": 9, "backend.demo": 9, "backend.cli": 10,
}
#: The diagnostics wing: measures the product, may import any of it; product code never
#: imports it. ``bench_cmd`` is the wing's door on the CLI, which only ``backend.cli``
#: (the entry point, registering every command) may open.
DIAGNOSTICS = ("backend.bench", "backend.judges", "backend.commands.bench_cmd")
ENTRY_POINT = "backend.cli"


def _match(name: str, table) -> str | None:
    best = None
    for key in table:
        if (name == key or name.startswith(key + ".")) and (best is None
                                                             or len(key) > len(best)):
            best = key
    return best


def stage_of(name: str) -> float | None:
    if name == "backend":  # the package's __init__ (it only sets up the environment)
        return 0
    key = _match(name, STAGES)
    return None if key is None else STAGES[key]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(absolute module imported, line) for every import in ``path``, at any depth;
    ``from x import y`` counts ``x.y`` (y may be a module)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            out += [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return out


def _ours(target: str) -> bool:
    return target.split(".")[0] in ("backend", "shared")


def _files(*roots: str) -> list[Path]:
    return sorted(p for r in roots for p in (REPO / r).rglob("*.py"))


def backward_imports(files: list[Path]) -> list[str]:
    """One line per import that points back or into the diagnostics wing."""
    bad = []
    for path in files:
        src = module_name(path)
        src_diag = _match(src, DIAGNOSTICS)
        src_stage = stage_of(src)
        if src_diag is None and src_stage is None:
            bad.append(f"{src} is in no stage: place it in STAGES or DIAGNOSTICS")
            continue
        for target, line in imports_of(path):
            if not _ours(target):
                continue
            where = f"{path.relative_to(REPO)}:{line}"
            if _match(target, DIAGNOSTICS) is not None:
                if src_diag is None and src != ENTRY_POINT:
                    bad.append(f"{where}: product module {src} imports the diagnostics "
                               f"wing ({target})")
                continue
            stage = stage_of(target)
            if stage is None:
                bad.append(f"{where}: {target} is in no stage")
            elif src_diag is None and stage > src_stage:
                bad.append(f"{where}: {src} (stage {src_stage}) imports {target} "
                           f"(stage {stage}): the arrow points back")
    return bad


def package_cycles(files: list[Path]) -> list[list[str]]:
    """Cycles among the backend's packages (``backend.x``), every import counted."""
    edges: dict[str, set[str]] = {}
    for path in files:
        src = ".".join(module_name(path).split(".")[:2])
        for target, _ in imports_of(path):
            dst = ".".join(target.split(".")[:2])
            if target.startswith("backend.") and dst != src and (REPO / Path(
                    *dst.split("."))).is_dir():
                edges.setdefault(src, set()).add(dst)
    return _cycles(edges)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk of ``edges`` meets (each reported once per entry)."""
    cycles, done = [], set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append([*trail[trail.index(node):], node])
            return
        if node in done:
            return
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, [*trail, node])
        done.add(node)

    for node in sorted(edges):
        visit(node, [])
    return cycles


def test_every_import_points_forward() -> None:
    bad = backward_imports(_files("backend", "shared"))
    assert not bad, "\n".join(bad)


def test_backend_packages_form_no_cycle() -> None:
    cycles = package_cycles(_files("backend"))
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_shared_and_the_addon_never_import_the_backend() -> None:
    bad = [f"{p.relative_to(REPO)}:{line}: {t}" for p in _files("shared", "blender_addon")
           for t, line in imports_of(p) if t.split(".")[0] == "backend"]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(("src", "code", "needle"), [
    ("backend/nerf/fake.py", "from ..provenance.watermark import mark_frame\n",
     "the arrow points back"),
    ("backend/nerf/components/fake.py", "from ..model import FaceNeRF\n",
     "the arrow points back"),
    ("backend/speech/fake.py", "def f():\n    from backend.motion import visemes\n",
     "the arrow points back"),
    ("backend/subject/fake.py", "from ..bench.render_bench import x\n",
     "imports the diagnostics wing"),
    ("backend/newthing/fake.py", "import os\n", "is in no stage"),
])
def test_a_backward_import_is_caught(tmp_path, monkeypatch, src, code, needle) -> None:
    """The checker itself: a planted backward import (top-level or inside a function)
    is reported with its file and line."""
    import sys

    here = sys.modules[__name__]
    monkeypatch.setattr(here, "REPO", tmp_path)
    path = tmp_path / src
    path.parent.mkdir(parents=True)
    path.write_text(code)
    bad = backward_imports([path])
    assert len(bad) == 1 and needle in bad[0], bad


def test_a_package_cycle_is_caught(tmp_path, monkeypatch) -> None:
    import sys

    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    for a, b in (("jobs", "cluster"), ("cluster", "jobs")):
        (tmp_path / "backend" / a).mkdir(parents=True, exist_ok=True)
        (tmp_path / "backend" / a / "m.py").write_text(f"from backend.{b} import m\n")
    files = sorted((tmp_path / "backend").rglob("*.py"))
    assert package_cycles(files) == [["backend.cluster", "backend.jobs", "backend.cluster"]]


def addon_cycles(files: list[Path]) -> list[list[str]]:
    """Import cycles among the add-on's own modules (``blender_addon.x``, every import
    counted, ``shared`` excluded: it imports nothing of the add-on)."""
    edges: dict[str, set[str]] = {}
    for path in files:
        src = module_name(path)
        for target, _ in imports_of(path):
            if not target.startswith("blender_addon.") or ".shared" in target:
                continue
            # ``from . import x`` names module x; ``from .x import y`` names x.y: keep
            # the longest prefix that is a module of the add-on
            parts = target.split(".")
            while parts and not ((REPO / Path(*parts)).with_suffix(".py").is_file()
                                 or (REPO / Path(*parts) / "__init__.py").is_file()):
                parts.pop()
            dst = ".".join(parts)
            if dst and dst != src and dst != "blender_addon":
                edges.setdefault(src, set()).add(dst)
    return _cycles(edges)


def test_the_addon_has_no_import_cycle() -> None:
    """The add-on's modules import one way: UI (panel, preferences, operators) -> the
    session -> the writers -> the bpy-free cores; the session gets the preferences as a typed
    ``BackendSettings`` handed down, never by importing them."""
    cycles = addon_cycles(_files("blender_addon"))
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_an_addon_cycle_is_caught(tmp_path, monkeypatch) -> None:
    """main's old loop, planted: preferences -> panel -> job_session -> preferences (the
    last one inside a function, where it hid)."""
    import sys

    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    addon = tmp_path / "blender_addon"
    addon.mkdir()
    (addon / "__init__.py").write_text("")
    (addon / "preferences.py").write_text("from .facecast_panel import draw\n")
    (addon / "facecast_panel.py").write_text("from . import job_session\n")
    (addon / "job_session.py").write_text("def f():\n    from .preferences import s\n")
    assert addon_cycles(sorted(addon.glob("*.py"))) == [[
        "blender_addon.facecast_panel", "blender_addon.job_session",
        "blender_addon.preferences", "blender_addon.facecast_panel"]]


def _is_module(parts: list[str]) -> bool:
    base = REPO / Path(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def unresolved_imports(files: list[Path]) -> list[str]:
    """Imports of ours that name no module: ``a.b.c`` needs ``a.b.c`` to be a module, or
    ``a.b`` to be one (``c`` a name in it). Function-level imports run only when called,
    so a moved module (``backend.video`` -> ``backend.media``) would otherwise hide there."""
    bad = []
    for path in files:
        for target, line in imports_of(path):
            parts = target.split(".")
            if parts[0] in ("backend", "shared") and not (
                    _is_module(parts) or _is_module(parts[:-1])):
                bad.append(f"{path.relative_to(REPO)}:{line}: {target} is no module")
    return bad


def test_every_import_of_ours_names_a_module() -> None:
    bad = unresolved_imports(_files("backend", "shared", "tests", "scripts"))
    assert not bad, "\n".join(bad)


def test_an_import_of_a_moved_module_is_caught(tmp_path, monkeypatch) -> None:
    import sys

    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "backend" / "media").mkdir(parents=True)
    (tmp_path / "backend" / "media" / "decode.py").write_text("def read_video(): ...\n")
    user = tmp_path / "backend" / "user.py"
    user.write_text("def f():\n    from backend.video.decode import read_video\n"
                    "from backend.media.decode import read_video\n")
    assert unresolved_imports([user]) == [
        "backend/user.py:2: backend.video.decode.read_video is no module"]


#: The add-on's layers (a module imports its own layer or a lower one; the longest
#: matching prefix decides): the bpy-free cores and the vendored wire; the Blender API
#: spellings; what writes into the scene; the job (its session and what it reads from
#: the scene); the UI, which Blender registers; the package's ``__init__``.
ADDON_LAYERS: dict[str, int] = {
    "blender_addon.core": 0, "blender_addon.shared": 0,
    "blender_addon.compat": 1,
    "blender_addon.writers": 2,
    "blender_addon.job_session": 3, "blender_addon.scene_inputs": 3,
    "blender_addon.ui": 4,
}


def addon_backward_imports(files: list[Path]) -> list[str]:
    """One line per add-on import that points up a layer (a writer importing the UI or
    the job session, the session importing the UI), or a module in no layer."""
    bad = []
    for path in files:
        src = module_name(path)
        if src == "blender_addon":
            continue  # the package's __init__ registers ui/ by name, above every layer
        key = _match(src, ADDON_LAYERS)
        if key is None:
            bad.append(f"{src} is in no layer: place it in ADDON_LAYERS")
            continue
        for target, line in imports_of(path):
            if not target.startswith("blender_addon."):
                continue
            dst = _match(target, ADDON_LAYERS)
            if dst is None or ADDON_LAYERS[dst] > ADDON_LAYERS[key]:
                bad.append(f"{path.relative_to(REPO)}:{line}: {src} imports {target}: "
                           "the arrow points up (ui -> job_session -> writers -> core)")
    return bad


def test_the_addon_imports_point_down() -> None:
    bad = addon_backward_imports(_files("blender_addon"))
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(("src", "code"), [
    ("blender_addon/writers/fake.py", "def f():\n    from ..ui.panel import draw_panel\n"),
    ("blender_addon/writers/fake.py", "from .. import job_session\n"),
    ("blender_addon/job_session2.py", "import os\n"),
    ("blender_addon/core/fake.py", "from ..writers import takes\n"),
])
def test_an_addon_import_pointing_up_is_caught(tmp_path, monkeypatch, src, code) -> None:
    import sys

    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    path = tmp_path / src
    path.parent.mkdir(parents=True)
    path.write_text(code)
    assert len(addon_backward_imports([path])) == 1


def test_every_addon_import_of_ours_names_a_module() -> None:
    """The add-on's relative imports resolve (``..shared`` is the vendored ``shared/``):
    a module moved between ``ui/``, ``writers/`` and the root leaves no stale import,
    even inside a function that only Blender would call."""
    bad = []
    for path in _files("blender_addon"):
        for target, line in imports_of(path):
            if not target.startswith("blender_addon."):
                continue
            parts = target.split(".")
            if parts[1] == "shared":
                parts = parts[1:]
            if not (_is_module(parts) or _is_module(parts[:-1])):
                bad.append(f"{path.relative_to(REPO)}:{line}: {target} is no module")
    assert not bad, "\n".join(bad)


def test_the_addon_core_needs_no_blender() -> None:
    """``blender_addon/core/`` imports neither bpy nor the add-on's Blender modules: only
    itself, ``shared`` and libraries, so its tests run in plain Python."""
    bad = []
    for path in _files("blender_addon/core"):
        for target, line in imports_of(path):
            top = target.split(".")[0]
            ours = target.startswith("blender_addon.") and not target.startswith(
                ("blender_addon.core", "blender_addon.shared"))
            if top == "bpy" or ours:
                bad.append(f"{path.relative_to(REPO)}:{line}: {target}")
    assert not bad, "\n".join(bad)
