"""Shared fixtures: real data location, a real backend process, key files."""

from __future__ import annotations

import importlib
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def data_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with the reason."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it lives in ../shared/data beside the "
                    "checkout on developer machines and in CI)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _private_facecast_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keys Facecast creates on first use (the C2PA signing key, ...) go to a temporary
    ``FACECAST_HOME``, never into the developer's ``~/.config/facecast``; backend
    processes the tests start inherit it."""
    old = os.environ.get("FACECAST_HOME")
    os.environ["FACECAST_HOME"] = str(tmp_path_factory.mktemp("facecast_home"))
    yield
    if old is None:
        os.environ.pop("FACECAST_HOME", None)
    else:
        os.environ["FACECAST_HOME"] = old


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    from shared.protocol.keys import ensure_key_file

    path, _ = ensure_key_file(tmp_path / "keys" / "hmac.key")
    return path


@pytest.fixture
def backend(key_file: Path):
    """A real ``facecast serve`` child process on a free loopback port, with the default
    client timeout (a short one drops busy test clients on a loaded machine)."""
    from backend.server.launcher import BackendProcess

    with BackendProcess(key_file=key_file) as proc:
        yield proc


@pytest.fixture
def zeroed_clip(tmp_path: Path) -> Path:
    """d12.mp4 with its header intact and every coded picture zeroed: it opens, nothing
    decodes — the 'corrupt video' case."""
    data = bytearray(data_path("clips", "d12.mp4").read_bytes())
    moov = data.find(b"moov")
    data[64:moov - 8] = bytes(moov - 8 - 64)
    bad = tmp_path / "zeroed.mp4"
    bad.write_bytes(bytes(data))
    return bad


@pytest.fixture(scope="session")
def addon_zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both extension zips, built once per test session: {"cp311": path, "cp313": path}."""
    import build_addon

    out = tmp_path_factory.mktemp("dist")
    try:
        built = build_addon.build(out, cache=REPO / "build" / "wheels")
    except build_addon.BuildError as exc:
        if "could not get" in str(exc):
            pytest.skip(f"PyPI unreachable and no cached wheels, cannot build the add-on "
                        f"zips: {exc}")
        raise
    return {p.name.rsplit("-", 1)[-1].removesuffix(".zip"): p for p in built}


@pytest.fixture(scope="session")
def staged_addon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The add-on package laid out exactly as in its zip (``shared/`` vendored), imported
    under a unique name, so its bpy-free modules can be tested without Blender."""
    import build_addon

    root = tmp_path_factory.mktemp("stage")
    name = f"facecast_stage_{uuid.uuid4().hex[:8]}"
    build_addon.stage_sources(root / name)
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(root))
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]


def _blender_pythons() -> list[str]:
    """This venv's bpy, plus any interpreters with another bpy (e.g. 4.5 LTS) listed in
    ``FACECAST_BLENDER_PYTHONS`` (os.pathsep-separated; CI sets it)."""
    extra = os.environ.get("FACECAST_BLENDER_PYTHONS", "")
    return [sys.executable, *(p for p in extra.split(os.pathsep) if p)]


@pytest.fixture(params=_blender_pythons(),
                ids=lambda p: "venv-bpy" if p == sys.executable else f"bpy@{p}")
def blender_python(request: pytest.FixtureRequest) -> str:
    """The interpreter a Blender test runs its bpy script with (one test per version)."""
    return request.param
