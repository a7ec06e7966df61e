"""Facecast Blender extension: speech + emotion keys -> face animation on any rig.

Installed by Blender as ``bl_ext.<repo>.facecast``; the repo's ``shared`` package is
vendored next to this file by ``build_addon.py``, so every import here is relative.

Layout, in import order (a module imports only what is below it):

* ``ui/``: preferences, per-scene properties, operators, the panel (registered here);
* ``job_session`` (the running job and its step function) and ``scene_inputs`` (what a
  job reads from the scene, validated): the job layer between the UI and the scene;
* ``writers/``: what writes into the scene (takes, Sequencer strips, the composite);
* ``compat``: the Blender API spellings that differ between 4.2 and 5.x;
* ``core/``: bpy-free (connection, job requests and results, files, audio, rig maths).

The bpy-using submodules are imported inside :func:`register` rather than at module
top: that keeps the package importable without Blender, so its bpy-free helpers
(``core``, ``shared``) can be tested in plain Python from the staged build.
"""

from __future__ import annotations

from types import ModuleType

# Registration order matters: preferences first (other modules read them), the panel
# last (it draws the operators and properties registered before it). Only ``ui/``
# registers classes: ``writers/``, ``job_session`` and ``core/`` register nothing.
_SUBMODULES = (
    "ui.preferences",
    "ui.rig_operators",
    "ui.properties",
    "ui.operators",
    "ui.take_operators",
    "ui.hybrid_operators",
    "ui.panel",
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
