"""Facecast Blender extension: speech + emotion keys -> face animation on any rig.

Installed by Blender as ``bl_ext.<repo>.facecast``; the repo's ``shared`` package is
vendored next to this file by ``build_addon.py``, so every import here is relative.

The bpy-using submodules are imported inside :func:`register` rather than at module
top: that keeps the package importable without Blender, so its bpy-free helpers
(``core``, ``shared``) can be tested in plain Python from the staged build.
"""

from __future__ import annotations

from types import ModuleType

# Registration order matters: preferences first (other modules read them), UI last.
_SUBMODULES = (
    "preferences",
    "rig_operators",
    "facecast_properties",
    "facecast_operators",
    "take_operators",
    "hybrid_operators",
    "facecast_panel",
)


def _submodules() -> list[ModuleType]:
    import importlib

    return [importlib.import_module(f".{name}", __package__) for name in _SUBMODULES]


def register() -> None:
    """Register every submodule's classes; undo partial work if one of them fails.

    A half-registered add-on cannot be disabled cleanly, so on failure the modules
    already registered are unregistered before the error propagates to Blender.
    """
    done: list[ModuleType] = []
    try:
        for module in _submodules():
            module.register()
            done.append(module)
    except Exception:
        for module in reversed(done):
            module.unregister()
        raise


def unregister() -> None:
    """Unregister in reverse order so nothing refers to an already-removed class."""
    for module in reversed(_submodules()):
        module.unregister()
