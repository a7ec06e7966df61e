"""Build the installable Facecast Blender extension zips.

Usage::

    python build_addon.py [--out dist] [--offline-wheels DIR] [--blender-ext PATH]

Two zips come out, because one extension zip can only carry wheels for the Python
ABI(s) it names and Blender changed Python between releases:

* ``facecast-<version>-cp311.zip``  for Blender 4.2 - 5.0 (Python 3.11),
* ``facecast-<version>-cp313.zip``  for Blender 5.1+   (Python 3.13; pyzmq ships
  ``cp312-abi3`` wheels, msgpack and blake3 have no abi3 build so their ``cp313``
  wheels are used).

Each zip holds the add-on package from ``blender_addon/`` at its root (``ui/``,
``writers/``, the job layer, ``core/``; Blender installs
an extension as a package named after its id, so the code becomes ``bl_ext.<repo>.facecast``),
the repo's ``shared/`` package vendored as ``facecast/shared/`` (so add-on code writes
``from .shared.blendshapes import ...`` and never touches ``sys.path``), the pyzmq and
msgpack and blake3 wheels for four platforms under ``wheels/``, and a generated
``blender_manifest.toml``.

Every zip is then checked with Blender's own validator (``blender_ext.py validate``,
the code behind ``blender --command extension validate``), which ships inside the PyPI
``bpy`` wheel; if that file cannot be found the build falls back to our own checks and
says so.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON_SRC = ROOT / "blender_addon"
SHARED_SRC = ROOT / "shared"
MANIFEST_NAME = "blender_manifest.toml"

# Pinned so every build bundles the same bytes; keep in step with pyproject's floor.
PYZMQ_VERSION = "27.3.0"
MSGPACK_VERSION = "1.2.4"
# blake3: shared/protocol/signing.py prefers BLAKE3-keyed MACs (~3.5x faster than HMAC on
# frame streams) and falls back to HMAC without it, so bundling it makes renders stream
# at full speed inside Blender; it ships cp311 and cp313 wheels for all four platforms.
BLAKE3_VERSION = "1.0.11"
BUNDLED = (
    ("pyzmq", PYZMQ_VERSION),
    ("msgpack", MSGPACK_VERSION),
    ("blake3", BLAKE3_VERSION),
)

# Blender platform name -> pip ``--platform`` tags. The first tag is the *newest* a wheel
# may need, matching what official Blender 4.2+ builds run on (glibc 2.28, macOS 11).
# pip expands a macOS tag to older macOS versions and universal2 by itself, but NOT a
# ``manylinux_2_28`` tag to older glibc floors, so the older manylinux tags that wheels
# such as blake3's (``manylinux_2_17`` / ``manylinux2014``) carry are listed explicitly.
PLATFORMS: dict[str, tuple[str, ...]] = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_11_0_arm64",),
    "macos-x64": ("macosx_11_0_x86_64",),
}

# Modules the add-on may never pull in: torch is the backend's job (hundreds of MB and
# no wheels inside Blender), bpy must not leak into shared/, and ``backend`` is not shipped.
FORBIDDEN_IMPORTS = frozenset({"torch", "torchaudio", "torchvision", "backend", "scipy"})
FORBIDDEN_IN_SHARED = FORBIDDEN_IMPORTS | {"bpy"}
#: Archive folders whose code must run without Blender (tests import it in plain Python).
BPY_FREE_DIRS = ("shared/", "core/")
# Top-level names that would only resolve in the source checkout, never once installed.
REPO_PACKAGES = frozenset({"shared", "blender_addon", "backend", "facecast"})

SKIP_NAMES = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"})
SKIP_SUFFIXES = (".pyc", ".pyo", ".orig", ".rej", ".swp")
TERSE_MAX = 64  # Blender's TERSE_DESCRIPTION_MAX_LENGTH for taglines and permission reasons


@dataclasses.dataclass(frozen=True)
class Target:
    """One zip: which Python the wheels are for and which Blenders may install it."""

    tag: str  # suffix of the zip name
    python_version: str  # pip --python-version
    abi: str  # pip --abi; pip also accepts abi3 wheels from older CPythons for cpXY
    blender_version_min: str
    blender_version_max: str | None  # exclusive, as Blender defines it


TARGETS: tuple[Target, ...] = (
    Target("cp311", "3.11", "cp311", "4.2.0", "5.1.0"),
    Target("cp313", "3.13", "cp313", "5.1.0", None),
)


class BuildError(RuntimeError):
    """A build step failed; the message says which and what to do about it."""


# --------------------------------------------------------------------------------------
# Source collection and static checks


def read_version() -> str:
    """Read ``shared.__version__`` without importing shared (its deps may be absent)."""
    text = (SHARED_SRC / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    if not match:
        raise BuildError("shared/__init__.py has no __version__ = '...' line")
    return match.group(1)


def iter_package_files(src: Path) -> Iterable[Path]:
    """Yield shippable files under ``src`` in a stable order (no caches, no bytecode)."""
    for path in sorted(src.rglob("*")):
        rel_parts = path.relative_to(src).parts
        if any(part in SKIP_NAMES or part.startswith(".") for part in rel_parts):
            continue
        if path.is_file() and not path.name.endswith(SKIP_SUFFIXES):
            yield path


def imported_modules(source: str, filename: str) -> list[tuple[int, str, int]]:
    """Return ``(lineno, module, level)`` for every import statement in ``source``."""
    tree = ast.parse(source, filename=filename)
    found: list[tuple[int, str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module or "", node.level))
    return found


def check_imports(files: Iterable[tuple[str, str]], forbidden: frozenset[str]) -> list[str]:
    """Find imports that would break the installed extension.

    ``files`` is ``(archive_name, source)``. Three failure kinds: a forbidden package
    (e.g. torch), an absolute import of a repo package, which works in the checkout
    but not once Blender installs the code as ``bl_ext.<repo>.facecast``, and a
    relative import that climbs above the add-on's root (``from ... import x`` in
    ``ui/panel.py``), which would reach into ``bl_ext.<repo>`` once installed.
    """
    problems = []
    for name, source in files:
        depth = name.count("/")  # folders between the add-on root and this file
        if name.rsplit("/", 1)[-1] == "__init__.py":
            depth -= 1  # a package's __init__ is its folder's module
        for lineno, module, level in imported_modules(source, name):
            if level:
                if level - 1 > depth:
                    problems.append(f"{name}:{lineno}: relative import climbs above the "
                                    f"add-on ({'.' * level}{module}); import within it")
                continue
            top = module.split(".")[0]
            if top in forbidden:
                problems.append(f"{name}:{lineno}: imports {module!r}; the add-on may not use it")
            elif top in REPO_PACKAGES:
                problems.append(
                    f"{name}:{lineno}: absolute import of {module!r}; use a relative import"
                )
    return problems


# --------------------------------------------------------------------------------------
# Wheels


def _matching_wheels(directory: Path, package: str, version: str) -> list[Path]:
    prefix = f"{package.replace('-', '_')}-{version}-"
    return sorted(p for p in directory.glob("*.whl") if p.name.lower().startswith(prefix))


def _pip_download(
    dest: Path, target: Target, platform_tags: Sequence[str], offline: Path | None
) -> subprocess.CompletedProcess[str]:
    """Ask pip for this target's pinned wheels on one platform.

    Offline, pip sees *only* ``offline``: user/site pip config and ``PIP_*`` source
    variables could otherwise add indexes or find-links behind our back.
    """
    env = dict(os.environ)
    sources: list[str] = []
    if offline is not None:
        for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
            env.pop(var, None)
        env["PIP_CONFIG_FILE"] = os.devnull
        sources = ["--no-index", f"--find-links={offline}"]
    cmd = [
        *(sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet"),
        *("--only-binary=:all:", "--no-deps", "--implementation", "cp"),
        *(arg for tag in platform_tags for arg in ("--platform", tag)),
        *("--python-version", target.python_version),
        *("--abi", target.abi, "-d", str(dest)),
        *sources,
        *(f"{name}=={version}" for name, version in BUNDLED),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)


def fetch_wheels(target: Target, cache: Path, offline: Path | None) -> dict[str, list[Path]]:
    """Return ``{blender_platform: [wheel, ...]}`` for ``target``, downloading if needed.

    Each (target, platform) gets its own cache folder so the files in it are exactly
    the wheels pip chose for that platform; a later build finds them there and never
    touches the network. With ``offline`` the network is never used at all.
    """
    result: dict[str, list[Path]] = {}
    for blender_platform, platform_tags in PLATFORMS.items():
        dest = cache / target.tag / blender_platform
        dest.mkdir(parents=True, exist_ok=True)
        have = [w for name, ver in BUNDLED for w in _matching_wheels(dest, name, ver)]
        if len(have) < len(BUNDLED):
            proc = _pip_download(dest, target, platform_tags, offline)
            if proc.returncode != 0:
                hint = (
                    f"Put the wheels in {offline}."
                    if offline is not None
                    else "Check network access to PyPI, or pass --offline-wheels DIR."
                )
                raise BuildError(
                    f"could not get {', '.join(f'{n}=={v}' for n, v in BUNDLED)} wheels for "
                    f"{target.tag}/{blender_platform} ({', '.join(platform_tags)}): "
                    f"{proc.stderr.strip()[-800:]}\n{hint}"
                )
        wheels = []
        for name, ver in BUNDLED:
            found = _matching_wheels(dest, name, ver)
            if not found:
                raise BuildError(f"pip reported success but no {name} {ver} wheel in {dest}")
            wheels.append(found[-1])
        result[blender_platform] = wheels
    return result


# --------------------------------------------------------------------------------------
# Manifest


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = "".join(f"  {_toml_value(v)},\n" for v in value)
        return "[\n" + inner + "]"
    raise TypeError(f"unsupported manifest value {value!r}")


def dump_manifest(data: dict[str, object]) -> str:
    """Write the small TOML subset a manifest needs (strings, lists, one level of tables).

    Kept in-house so building needs nothing beyond the standard library and pip.
    """
    lines = ["# Generated by build_addon.py from blender_addon/blender_manifest.toml", ""]
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for key, value in data.items():
        if key not in tables:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, table in tables.items():
        lines += ["", f"[{key}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def make_manifest(target: Target, version: str, wheel_names: Sequence[str]) -> dict[str, object]:
    """Fill the per-build fields into the template manifest."""
    with (ADDON_SRC / MANIFEST_NAME).open("rb") as fh:
        template = tomllib.load(fh)
    data: dict[str, object] = {}
    for key in ("schema_version", "id", "name", "tagline", "maintainer", "type", "tags", "license"):
        if key in template:
            data[key] = template[key]
    data["version"] = version
    data["blender_version_min"] = target.blender_version_min
    if target.blender_version_max:
        data["blender_version_max"] = target.blender_version_max
    data["platforms"] = list(PLATFORMS)
    data["wheels"] = [f"./wheels/{name}" for name in wheel_names]
    for key, value in template.items():
        if key not in data:
            data[key] = value
    return data


def own_manifest_checks(manifest: dict[str, object]) -> list[str]:
    """The subset of Blender's manifest rules we enforce even without Blender's validator."""
    problems = []
    for key in (
        "schema_version",
        "id",
        "version",
        "name",
        "tagline",
        "maintainer",
        "type",
        "license",
        "blender_version_min",
    ):
        if not manifest.get(key):
            problems.append(f"missing {key}")
    reasons = dict(manifest.get("permissions", {}))  # type: ignore[call-overload]
    texts = [(str(manifest.get("tagline", "")), "tagline")]
    texts += [(str(v), f"permission {k!r} reason") for k, v in reasons.items()]
    for text, what in texts:
        # Same rule as Blender's terse-description check: <= 64 chars, stripped, and the
        # last character alphanumeric or a closing bracket.
        if not text or text != text.strip():
            problems.append(f"{what} {text!r} must be non-empty without outer spaces")
        elif len(text) > TERSE_MAX:
            problems.append(f"{what} {text!r} is {len(text)} chars; Blender allows {TERSE_MAX}")
        elif not (text[-1].isalnum() or text[-1] in ")]}"):
            problems.append(f"{what} {text!r} must not end with punctuation")
    return problems


# --------------------------------------------------------------------------------------
# Validation with Blender's own code


def find_blender_ext(explicit: str | None = None) -> Path | None:
    """Locate ``bl_pkg/cli/blender_ext.py``: an explicit path, else the PyPI bpy wheel's.

    Found through the import system's spec so bpy is not imported (importing it would
    start a whole Blender inside the build process).
    """
    if explicit:
        path = Path(explicit)
        return path if path.is_file() else None
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.origin:
        return None
    hits = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    return hits[-1] if hits else None


def blender_validate(zip_path: Path, blender_ext: Path) -> str:
    """Run Blender's validator on ``zip_path``; return its output, raise on failure.

    Tags are checked against the list Blender ships (``_bpy_internal/extensions/tags.py``)
    when it sits next to the validator.
    """
    cmd = [sys.executable, str(blender_ext), "validate"]
    tags = blender_ext.parents[3] / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    if tags.is_file():
        cmd.append(f"--valid-tags={tags}")
    cmd.append(str(zip_path))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise BuildError(f"Blender's validator rejected {zip_path.name}:\n{out}")
    return out


def check_archive(zip_path: Path) -> list[str]:
    """Checks Blender's validator leaves out: listed wheels exist and nothing stray ships."""
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        manifest = tomllib.loads(zf.read(MANIFEST_NAME).decode("utf-8"))
    listed = [w.removeprefix("./") for w in manifest.get("wheels", [])]
    problems = [f"manifest lists {w} but the zip lacks it" for w in listed if w not in names]
    problems += [
        f"stray file {n}" for n in sorted(names) if "__pycache__" in n or n.endswith(SKIP_SUFFIXES)
    ]
    return problems


# --------------------------------------------------------------------------------------
# Zip assembly


def collect_sources() -> list[tuple[str, bytes]]:
    """Add-on modules at the zip root plus ``shared/`` vendored beneath it."""
    entries: list[tuple[str, bytes]] = []
    for path in iter_package_files(ADDON_SRC):
        rel = path.relative_to(ADDON_SRC).as_posix()
        if rel == MANIFEST_NAME:
            continue  # the generated one replaces the template
        entries.append((rel, path.read_bytes()))
    for path in iter_package_files(SHARED_SRC):
        entries.append(("shared/" + path.relative_to(SHARED_SRC).as_posix(), path.read_bytes()))
    names = {name for name, _ in entries}
    if "__init__.py" not in names or "shared/__init__.py" not in names:
        raise BuildError("blender_addon/__init__.py and shared/__init__.py must both exist")
    return entries


def stage_sources(dest: Path) -> Path:
    """Write the add-on package (code + vendored shared/, no wheels) into ``dest``.

    Lets tests import bpy-free add-on modules (e.g. ``demo_mesh``) exactly as they are
    laid out in the zip, without installing anything.
    """
    for name, data in collect_sources():
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return dest


def static_checks(entries: Sequence[tuple[str, bytes]]) -> None:
    """Refuse to build code that imports torch/bpy where it must not, or absolute repo names."""
    addon_py = [
        (n, b.decode("utf-8"))
        for n, b in entries
        if n.endswith(".py") and not n.startswith("shared/")
    ]
    # shared/ and the add-on's bpy-free core/ must stay importable without Blender
    bpy_free = [
        (n, b.decode("utf-8")) for n, b in entries
        if n.endswith(".py") and n.startswith(BPY_FREE_DIRS)
    ]
    problems = check_imports(addon_py, FORBIDDEN_IMPORTS)
    problems += check_imports(bpy_free, FORBIDDEN_IN_SHARED)
    if problems:
        raise BuildError("add-on code would not work once installed:\n  " + "\n  ".join(problems))


def write_zip(
    out: Path, entries: Sequence[tuple[str, bytes]], wheels: Sequence[Path], manifest_text: str
) -> None:
    """Write the archive with fixed timestamps so identical inputs give identical zips."""
    stamp = (2024, 1, 1, 0, 0, 0)
    tmp = out.with_suffix(".zip.part")

    def info(name: str, compress: int) -> zipfile.ZipInfo:
        zi = zipfile.ZipInfo(name, date_time=stamp)
        zi.compress_type = compress
        zi.external_attr = 0o644 << 16
        return zi

    with zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(info(MANIFEST_NAME, zipfile.ZIP_DEFLATED), manifest_text.encode("utf-8"))
        for name, data in entries:
            zf.writestr(info(name, zipfile.ZIP_DEFLATED), data)
        for wheel in wheels:
            # Wheels are already compressed; storing them saves build time.
            zf.writestr(info("wheels/" + wheel.name, zipfile.ZIP_STORED), wheel.read_bytes())
    tmp.replace(out)  # never leave a half-written zip under the final name


def build_target(
    target: Target,
    out_dir: Path,
    cache: Path,
    offline: Path | None,
    blender_ext: Path | None,
    entries: Sequence[tuple[str, bytes]],
    version: str,
) -> tuple[Path, str]:
    """Build and validate one zip; return its path and a line saying how it was validated."""
    per_platform = fetch_wheels(target, cache, offline)
    wheels: dict[str, Path] = {}
    for files in per_platform.values():
        for wheel in files:  # a universal2 wheel serves both macOS platforms: keep one copy
            wheels[wheel.name] = wheel
    ordered = [wheels[name] for name in sorted(wheels)]
    manifest = make_manifest(target, version, [w.name for w in ordered])
    if problems := own_manifest_checks(manifest):
        raise BuildError("manifest problems:\n  " + "\n  ".join(problems))
    text = dump_manifest(manifest)
    if tomllib.loads(text) != manifest:
        raise BuildError("internal error: generated manifest does not round-trip through TOML")

    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"facecast-{version}-{target.tag}.zip"
    write_zip(zip_path, entries, ordered, text)
    if problems := check_archive(zip_path):
        raise BuildError(f"{zip_path.name}:\n  " + "\n  ".join(problems))

    if blender_ext is None:
        how = "own checks only (Blender's blender_ext.py not found; install bpy to use it)"
    else:
        blender_validate(zip_path, blender_ext)
        how = f"Blender's validator {blender_ext}"
    return zip_path, how


def build(
    out_dir: Path,
    cache: Path | None = None,
    offline: Path | None = None,
    blender_ext: str | None = None,
    targets: Sequence[Target] = TARGETS,
) -> list[Path]:
    """Build every target; returns the zip paths. Importable so tests call it directly."""
    cache = cache or ROOT / "build" / "wheels"
    version = read_version()
    entries = collect_sources()
    static_checks(entries)
    validator = find_blender_ext(blender_ext)
    if blender_ext and validator is None:
        raise BuildError(f"--blender-ext {blender_ext} does not exist")
    built = []
    for target in targets:
        zip_path, how = build_target(target, out_dir, cache, offline, validator, entries, version)
        print(f"built {zip_path}  (validated with {how})")
        built.append(zip_path)
    return built


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    parser.add_argument(
        "--offline-wheels",
        metavar="DIR",
        help="take missing wheels only from DIR; never use the network",
    )
    parser.add_argument(
        "--cache",
        default=str(ROOT / "build" / "wheels"),
        help="wheel cache folder (default: build/wheels)",
    )
    parser.add_argument(
        "--blender-ext",
        metavar="PATH",
        help="blender_ext.py of a Blender install to validate with "
        "(default: the one inside the installed bpy module)",
    )
    parser.add_argument(
        "--only",
        choices=[t.tag for t in TARGETS],
        action="append",
        help="build only this target (repeatable)",
    )
    args = parser.parse_args(argv)
    targets = [t for t in TARGETS if not args.only or t.tag in args.only]
    try:
        build(
            Path(args.out),
            cache=Path(args.cache),
            offline=Path(args.offline_wheels) if args.offline_wheels else None,
            blender_ext=args.blender_ext,
            targets=targets,
        )
    except BuildError as exc:
        print(f"build_addon: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
