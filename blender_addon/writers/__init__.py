"""What Facecast writes into the Blender scene.

Takes on the NLA (``takes``) and the take writer that fills them with shape-key or
pose-blend curves, head motion and landmark empties (``take_writer``); the bone
rig's pose library the take writer blends from (``pose_library``: read, never
changed); rendered frames as a Sequencer strip (``sequencer_writer``); the depth
composite of the rendered head over the scene's CG (``scene_composite``); the demo
face as a Blender object (``demo_rig``). Writers take plain values (arrays, a
``RigMapping``, paths) and never import the UI, the job session or the scene
readers, so scripts and tests can drive them without the operators;
``tests/test_import_direction.py`` checks that.
"""
