"""Tests for build_addon.py: the two extension zips, their manifests, wheels and code.

The build downloads pyzmq/msgpack wheels from PyPI on first use (cached in build/wheels),
so these tests skip with a clear reason when PyPI is unreachable and nothing is cached.
"""

from __future__ import annotations

import ast
import tomllib
import zipfile
from pathlib import Path

import pytest

import build_addon

ROOT = Path(__file__).resolve().parents[2]

PLATFORM_WHEEL_MARKERS = {
    # Blender platform -> substrings of a wheel's platform tag that serve it.
    "linux-x64": ("manylinux", "x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx", "arm64|universal2"),
    "macos-x64": ("macosx", "x86_64|universal2"),
}


def _wheel_serves(wheel: str, platform: str) -> bool:
    plat = wheel.removesuffix(".whl").split("-")[-1]
    return all(any(alt in plat for alt in m.split("|")) for m in PLATFORM_WHEEL_MARKERS[platform])


def _python_ok(wheel: str, target: build_addon.Target) -> bool:
    """Whether CPython ``target.python_version`` can load this wheel (exact or abi3)."""
    python_tag, abi_tag = wheel.split("-")[-3:-1]
    want = "cp" + target.python_version.replace(".", "")
    if python_tag == want and abi_tag == want:
        return True
    return abi_tag == "abi3" and int(python_tag[3:]) <= int(want[3:])


def _manifest(zip_path: Path) -> dict:
    with zipfile.ZipFile(zip_path) as zf:
        return tomllib.loads(zf.read("blender_manifest.toml").decode("utf-8"))


def test_builds_two_zips(addon_zips: dict[str, Path]) -> None:
    assert set(addon_zips) == {"cp311", "cp313"}
    version = build_addon.read_version()
    for tag, path in addon_zips.items():
        assert path.name == f"facecast-{version}-{tag}.zip"
        assert zipfile.is_zipfile(path)


@pytest.mark.parametrize("tag", ["cp311", "cp313"])
def test_manifest_fields(addon_zips: dict[str, Path], tag: str) -> None:
    m = _manifest(addon_zips[tag])
    assert m["schema_version"] == "1.0.0"
    assert m["id"] == "facecast"
    assert m["type"] == "add-on"
    assert m["version"] == build_addon.read_version()
    assert m["license"] == ["SPDX:MIT"]
    assert m["name"] and m["maintainer"]
    tagline = m["tagline"]
    assert len(tagline) < 64 and tagline[-1].isalnum()
    assert set(m["permissions"]) == {"network", "files"}
    for reason in m["permissions"].values():
        assert 0 < len(reason) <= 64 and not reason.endswith(".")
    assert sorted(m["platforms"]) == sorted(PLATFORM_WHEEL_MARKERS)
    if tag == "cp311":
        assert (m["blender_version_min"], m["blender_version_max"]) == ("4.2.0", "5.1.0")
    else:
        assert m["blender_version_min"] == "5.1.0"
        assert "blender_version_max" not in m


@pytest.mark.parametrize("tag", ["cp311", "cp313"])
def test_wheels_for_every_platform(addon_zips: dict[str, Path], tag: str) -> None:
    target = next(t for t in build_addon.TARGETS if t.tag == tag)
    m = _manifest(addon_zips[tag])
    with zipfile.ZipFile(addon_zips[tag]) as zf:
        names = set(zf.namelist())
    wheels = [w.removeprefix("./") for w in m["wheels"]]
    assert all(w in names for w in wheels), "manifest lists a wheel the zip lacks"
    assert {n for n in names if n.endswith(".whl")} == set(wheels), "unlisted wheel in zip"
    for platform in PLATFORM_WHEEL_MARKERS:
        for package in ("pyzmq", "msgpack"):
            serving = [
                w
                for w in wheels
                if Path(w).name.startswith(package + "-") and _wheel_serves(w, platform)
            ]
            assert serving, f"{tag}: no {package} wheel for {platform}"
            assert all(_python_ok(Path(w).name, target) for w in serving), serving


@pytest.mark.parametrize("tag", ["cp311", "cp313"])
def test_code_layout(addon_zips: dict[str, Path], tag: str) -> None:
    with zipfile.ZipFile(addon_zips[tag]) as zf:
        names = zf.namelist()
        for required in (
            "__init__.py",
            "ui/__init__.py",
            "ui/preferences.py",
            "ui/rig_operators.py",
            "compat.py",
            "job_session.py",
            "core/__init__.py",
            "core/demo_mesh.py",
            "writers/__init__.py",
            "writers/demo_rig.py",
            "shared/__init__.py",
            "shared/blendshapes.py",
        ):
            assert required in names, required
        # The vendored shared/ is byte-identical to the repo's.
        assert zf.read("shared/blendshapes.py") == (ROOT / "shared/blendshapes.py").read_bytes()
        assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
        assert "blender_manifest.toml" in names
        assert not any(n.startswith(("backend/", "tests/", "blender_addon/")) for n in names)

        for name in (n for n in names if n.endswith(".py")):
            tree = ast.parse(zf.read(name), filename=name)
            for node in ast.walk(tree):
                mods: list[str] = []
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    mods = [node.module or ""]
                for mod in mods:
                    top = mod.split(".")[0]
                    assert top not in {"torch", "torchaudio", "backend"}, f"{name} imports {mod}"
                    assert top not in {"shared", "blender_addon"}, f"{name}: absolute {mod}"
                    if name.startswith("shared/"):
                        assert top != "bpy", f"{name} imports bpy"


def test_blender_validator_accepts_zips(addon_zips: dict[str, Path]) -> None:
    validator = build_addon.find_blender_ext()
    if validator is None:
        pytest.skip("bpy not installed: Blender's extension validator is unavailable")
    for path in addon_zips.values():
        out = build_addon.blender_validate(path, validator)
        assert "Success" in out


def test_blender_validator_rejects_bad_manifest(addon_zips: dict[str, Path],
                                                tmp_path: Path) -> None:
    """Proves the validation step has teeth: a trailing period in the tagline must fail."""
    validator = build_addon.find_blender_ext()
    if validator is None:
        pytest.skip("bpy not installed: Blender's extension validator is unavailable")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(addon_zips["cp311"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "blender_manifest.toml":
                m = tomllib.loads(data.decode("utf-8"))
                m["tagline"] += "."
                data = build_addon.dump_manifest(m).encode("utf-8")
            dst.writestr(item, data)
    with pytest.raises(build_addon.BuildError, match="tagline"):
        build_addon.blender_validate(bad, validator)


def test_own_manifest_checks() -> None:
    good = build_addon.make_manifest(build_addon.TARGETS[0], "1.2.3", ["a-1-cp311-cp311-x.whl"])
    assert build_addon.own_manifest_checks(good) == []
    assert tomllib.loads(build_addon.dump_manifest(good)) == good
    bad = dict(good, tagline="Ends with a period.", permissions={"network": "x" * 70})
    problems = build_addon.own_manifest_checks(bad)
    assert any("tagline" in p for p in problems)
    assert any("network" in p for p in problems)


def test_static_checks_reject_torch_and_absolute_imports() -> None:
    entries = [("ok.py", b"from .shared import blendshapes\nimport bpy\n")]
    build_addon.static_checks(entries)
    with pytest.raises(build_addon.BuildError, match="torch"):
        build_addon.static_checks([*entries, ("bad.py", b"import torch\n")])
    with pytest.raises(build_addon.BuildError, match="relative"):
        build_addon.static_checks([*entries, ("bad.py", b"from shared.blendshapes import X\n")])
    with pytest.raises(build_addon.BuildError, match="bpy"):
        build_addon.static_checks([*entries, ("shared/x.py", b"import bpy\n")])
    with pytest.raises(build_addon.BuildError, match="bpy"):  # the bpy-free core too
        build_addon.static_checks([*entries, ("core/x.py", b"def f():\n    import bpy\n")])
    # ui/ and writers/ reach the add-on root with ``..``; one more dot leaves the add-on
    build_addon.static_checks([*entries, ("ui/x.py", b"from ..core import y\n"),
                               ("ui/__init__.py", b"from . import x\n")])
    with pytest.raises(build_addon.BuildError, match="climbs above"):
        build_addon.static_checks([*entries, ("ui/x.py", b"from ...core import y\n")])
    with pytest.raises(build_addon.BuildError, match="climbs above"):
        build_addon.static_checks([*entries, ("writers/__init__.py", b"from .. import y\n")])


def test_offline_build_fails_clearly_without_wheels(tmp_path: Path) -> None:
    empty = tmp_path / "nowheels"
    empty.mkdir()
    with pytest.raises(build_addon.BuildError, match="could not get"):
        build_addon.build(
            tmp_path / "out",
            cache=tmp_path / "cache",
            offline=empty,
            targets=build_addon.TARGETS[:1],
        )
    assert not list((tmp_path / "out").glob("*.zip")) if (tmp_path / "out").exists() else True


def test_zip_is_reproducible(tmp_path: Path) -> None:
    entries = [("__init__.py", b"x = 1\n")]
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    build_addon.write_zip(a, entries, [], 'id = "x"\n')
    build_addon.write_zip(b, entries, [], 'id = "x"\n')
    assert a.read_bytes() == b.read_bytes()
