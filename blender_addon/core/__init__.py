"""The add-on's bpy-free cores: everything that can be decided without Blender.

The connection and the local backend process (``backend_link``, ``backend_session``),
the two jobs' requests and result handlers (``animate_job``, ``render_job``,
``job_events``, ``job_stall``), frame and depth files (``frame_writer``, through the one
atomic writer, ``shared.atomic_file``), audio
(``audio_io``), rig mapping and pose blending (``rig_mapping``, ``pose_blend``) and the
demo face's geometry (``demo_mesh``). Nothing here imports bpy or the add-on's Blender
modules (the build refuses bpy here; ``tests/test_import_direction.py`` checks both),
so the tests import these from the staged package in plain Python, as glTF-Blender-IO
keeps its core apart from its Blender glue.
"""
