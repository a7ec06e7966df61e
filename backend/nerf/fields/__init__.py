"""The field's parts: tri-planes, the torso field, landmark attention and its tokens,
the mesh-guided deformation. ``backend.nerf.model`` puts them together."""
