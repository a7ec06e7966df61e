"""The add-on's user interface: everything Blender registers and draws.

The preferences (``preferences``), the per-scene settings (``properties``), the
operators (``operators`` for the panel's jobs and backend buttons, ``rig_operators``,
``take_operators``, ``hybrid_operators``), the sidebar panel (``panel``) and the
drawing pieces the panel and the preferences share (``widgets``). Operators only
*start* things: they read the scene through ``scene_inputs``, hand a job to
``job_session`` and return. Nothing outside ``ui/`` imports it (the add-on's
``__init__`` registers its modules in order); ``tests/test_import_direction.py``
checks that.
"""
