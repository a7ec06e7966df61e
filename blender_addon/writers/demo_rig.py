"""Turn the numpy demo face (``demo_mesh``) into a Blender object with 53 shape keys.

Kept apart from the operator so scripts and tests can build the rig without going
through the operator machinery, and apart from ``demo_mesh`` so the geometry stays
testable without Blender.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core.demo_mesh import MATERIAL_NAMES, build_demo_face

DEMO_NAME = "Facecast Demo Face"
# Viewport/base colours so the eyes and mouth read at a glance in Solid mode.
_COLORS = {
    "skin": (0.80, 0.62, 0.52, 1.0),
    "eye": (0.95, 0.95, 0.93, 1.0),
    "iris": (0.10, 0.16, 0.25, 1.0),
    "mouth": (0.55, 0.20, 0.22, 1.0),
}


def _material(name: str) -> bpy.types.Material:
    """Reuse the material a previous demo rig made, so repeated use does not pile up copies."""
    full = f"Facecast Demo {name.title()}"
    mat = bpy.data.materials.get(full) or bpy.data.materials.new(full)
    color = _COLORS[name]
    mat.diffuse_color = color
    # Only touch the node tree if it exists: 5.x materials always have one; older default
    # materials get one when use_nodes is set, which Cycles/EEVEE need to show the colour.
    if not mat.node_tree and hasattr(mat, "use_nodes"):
        mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF") if mat.node_tree else None
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = color
    return mat


def create_demo_rig(
    collection: bpy.types.Collection, location: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> bpy.types.Object:
    """Create the demo head in ``collection`` and return the new object.

    Always creates a new object and mesh (Blender uniquifies the names), never
    modifies an existing one, so running it twice cannot damage earlier work.
    """
    face = build_demo_face()
    mesh = bpy.data.meshes.new(DEMO_NAME)
    mesh.from_pydata(face.vertices.tolist(), [], [list(f) for f in face.faces])
    for name in MATERIAL_NAMES:
        mesh.materials.append(_material(name))
    mesh.polygons.foreach_set("material_index", face.material_indices)
    mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
    mesh.validate(verbose=False)
    mesh.update()

    obj = bpy.data.objects.new(DEMO_NAME, mesh)
    obj.location = location
    collection.objects.link(obj)

    obj.shape_key_add(name="Basis", from_mix=False)
    basis = face.vertices.astype(np.float32)
    for name, offset in face.shape_keys.items():
        key = obj.shape_key_add(name=name, from_mix=False)
        key.data.foreach_set("co", (basis + offset.astype(np.float32)).ravel())
        key.slider_min, key.slider_max = 0.0, 1.0
        key.value = 0.0  # new keys may start at 1.0; the rig must rest at neutral
    mesh.shape_keys.use_relative = True
    mesh.update()
    return obj
