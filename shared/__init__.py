"""Code used by both the Blender add-on and the backend.

Pure Python + numpy + pyzmq + msgpack. Never imports bpy or torch, and only uses
relative imports, because ``build_addon.py`` vendors this package inside the add-on.
"""

__version__ = "0.1.0"
