"""Composite with Scene: the NeRF frames depth-combined with the scene's own CG render.

One Z Combine in the scene's compositor takes the rendered head (the RGBA sequence and
its depth EXRs, ``frame_writer``'s layout) and the CG (what fed the compositor's
output before — the user's own grade, if any — else the render layer's image) with the
render layer's Depth pass, and keeps the nearer surface per pixel:

* Depth is metres on both sides (``shared/depth_exr.py``), the head's "no surface" is
  1e10 m, so empty NeRF pixels never hide CG.
* Alpha: Z Combine's "Use Alpha" mixes the nearer layer over the farther one as
  STRAIGHT colour: ``rgb = a * near + (1 - a) * far`` with the nearer layer's alpha
  ``a``, and the result's alpha is the larger of the two. Fed premultiplied colour it
  would multiply by ``a`` twice — the dark rim of a classic halo — so both inputs are
  made straight first: the NeRF PNGs (straight on disk) are read as "Channel Packed"
  (no premultiplication on load), the CG goes through an Alpha Convert to straight.
  A semi-transparent head edge (hair, the face's rim) in front of CG is therefore
  mixed with the CG behind it in proportion to its alpha, with no dark or bright
  fringe; where CG is nearer, the CG pixel lies over the head with its own alpha. Over
  opaque CG, or over nothing (transparent film), the output is exact premultiplied
  colour; where both layers are partial at once it is an approximation (the farther
  layer's own alpha is not applied). The head's depth at a partial pixel is the
  alpha-weighted mean depth of what it shows (the renderer's normalised expected
  depth), never pulled toward the camera.
* Anti-alias is off: it blurs the choice between the two layers along every depth
  edge, which darkens the seam between the head and CG passing in front of it.

What it changes is recorded on the scene (``facecast_composite``) and undone by
:func:`remove`: its nodes (all named ``Facecast …``, in one frame), the link it took
over into the output, the switches it turned on, and the head's own sequencer strips,
which it mutes (a render shows the sequencer instead of the compositor while an image
strip exists; in 4.x even a muted one, so with no other image strip the sequencer's
post-processing is turned off too); the user's nodes are never edited.
Everything is checked before anything is touched (:func:`check`), so a refusal leaves
the tree as it was.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from .. import compat
from ..core.frame_writer import check_sequence, depth_file, frame_file
from ..shared.errors import InputError

STATE_KEY = "facecast_composite"
FRAME = "Facecast Composite"
NERF = "Facecast NeRF"
DEPTH = "Facecast NeRF Depth"
LAYERS = "Facecast Render Layers"
ZCOMBINE = "Facecast Z Combine"
STRAIGHT = "Facecast CG Straight"
OUR_NODES = (FRAME, NERF, DEPTH, LAYERS, STRAIGHT, ZCOMBINE)


def render_size(scene: bpy.types.Scene) -> tuple[int, int]:
    r = scene.render
    pct = r.resolution_percentage / 100.0
    return int(r.resolution_x * pct), int(r.resolution_y * pct)


def is_active(scene: bpy.types.Scene) -> bool:
    return scene.get(STATE_KEY) is not None


def check(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, folder: str) -> Path:
    """What must hold before the compositor is touched; the frames folder."""
    if not folder.strip():
        raise InputError("No NeRF frames to composite",
                         "Render to Sequencer first, or pick the frames folder of a render")
    if not view_layer.use_pass_z:
        raise InputError(f"View layer '{view_layer.name}' renders no Z pass",
                         "tick View Layer Properties > Passes > Data > Z, then Composite "
                         "with Scene again")
    path = Path(bpy.path.abspath(folder))
    check_sequence(path, range(scene.frame_start, scene.frame_end + 1), render_size(scene))
    return path


def _image(name: str, path: Path, colorspace: str, alpha: str) -> bpy.types.Image:
    image = bpy.data.images.get(name)
    if image is None or bpy.path.abspath(image.filepath) != str(path):
        if image is not None:
            image.name = image.name + ".old"
        image = bpy.data.images.load(str(path), check_existing=False)
        image.name = name
    else:
        image.reload()  # a re-render into the same folder
    image.source = "SEQUENCE"
    image.colorspace_settings.name = colorspace
    image.alpha_mode = alpha
    return image


def _node(tree: object, name: str, kind: str, frame: object, x: float, y: float) -> object:
    node = tree.nodes.get(name)  # type: ignore[attr-defined]
    if node is None or node.bl_idname != kind:
        if node is not None:
            tree.nodes.remove(node)  # type: ignore[attr-defined]
        node = tree.nodes.new(kind)  # type: ignore[attr-defined]
        node.name = name
        node.location = (x, y)
    node.label = name
    if frame is not None:
        node.parent = frame
    return node


def _sequence(node: object, image: bpy.types.Image, first: int, count: int) -> None:
    node.image = image  # type: ignore[attr-defined]
    node.frame_duration = count  # type: ignore[attr-defined]
    node.frame_start = first  # type: ignore[attr-defined]
    node.frame_offset = first - 1  # type: ignore[attr-defined]  # file NNNNNN = scene frame


def _socket_ref(socket: object) -> list[str]:
    return [socket.node.name, socket.identifier]  # type: ignore[attr-defined]


def _find_output(node: object, identifier: str) -> object | None:
    return next((s for s in node.outputs if s.identifier == identifier), None)  # type: ignore


def build(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, folder: str) -> str:
    """Add or update the combine (idempotent); returns a one-line summary."""
    path = check(scene, view_layer, folder)
    state = scene.get(STATE_KEY)
    state = dict(state) if state is not None else None
    tree = compat.compositor_tree(scene) if state is not None else None
    if state is None or tree is None:
        state = {"use_nodes": compat.compositor_uses_nodes(scene),
                 "use_compositing": bool(scene.render.use_compositing)}
        tree, created = compat.ensure_compositor_tree(scene)
        state["tree_created"] = created
        out_node, out_socket = compat.compositor_output(tree)
        state["output_created"] = out_node is None
        if out_node is None:
            out_node, out_socket = compat.new_compositor_output(tree)
        source = out_socket.links[0].from_socket if out_socket.is_linked else None
        state["source"] = _socket_ref(source) if source is not None else []
        state["output"] = out_node.name
    out_node = tree.nodes.get(state["output"])
    out_socket = compat.compositor_output(tree)[1] if out_node is None else next(
        s for s in out_node.inputs if s.type == "RGBA")

    first, last = scene.frame_start, scene.frame_end
    frame = _node(tree, FRAME, "NodeFrame", None, 0, 0)
    layers = _node(tree, LAYERS, "CompositorNodeRLayers", frame, -400, 300)
    layers.scene, layers.layer = scene, view_layer.name
    nerf = _node(tree, NERF, "CompositorNodeImage", frame, -400, 0)
    _sequence(nerf, _image(NERF, frame_file(path, first), "sRGB", "CHANNEL_PACKED"), first,
              last - first + 1)
    depth = _node(tree, DEPTH, "CompositorNodeImage", frame, -400, -300)
    _sequence(depth, _image(DEPTH, depth_file(path, first), "Non-Color", "STRAIGHT"), first,
              last - first + 1)
    straight = _node(tree, STRAIGHT, "CompositorNodePremulKey", frame, -200, 300)
    compat.set_to_straight_alpha(straight)
    z = _node(tree, ZCOMBINE, "CompositorNodeZcombine", frame, 0, 0)
    compat.set_node_option(z, "use_alpha", "Use Alpha", True)
    compat.set_node_option(z, "use_antialias_z", "Anti-Alias", False)

    source = None
    if state["source"]:
        node = tree.nodes.get(state["source"][0])
        source = _find_output(node, state["source"][1]) if node is not None else None
    cg = source if source is not None else layers.outputs["Image"]
    links = tree.links
    links.new(nerf.outputs["Image"], z.inputs[0])
    links.new(depth.outputs["Image"], z.inputs[1])
    links.new(cg, straight.inputs[0])
    links.new(straight.outputs[0], z.inputs[2])
    links.new(layers.outputs["Depth"], z.inputs[3])
    links.new(z.outputs[0], out_socket)
    scene.render.use_compositing = True
    # A render shows the sequencer, not the compositor, while it has a visible image
    # strip: the head's own strips are muted (the composite now carries the head).
    muted = set(state.get("muted", []))
    for strip in _our_strips(scene):
        if not strip.mute:
            strip.mute = True
            muted.add(strip.name)
    state["muted"] = sorted(muted)
    # Blender 4.x renders the sequencer while it has any image strip, muted or not: with
    # only the head's strips (and sound) in it, its post-processing goes off.
    others = [st for st in _strips(scene) if st.type != "SOUND" and st.name not in muted]
    if "use_sequencer" not in state:
        state["use_sequencer"] = bool(scene.render.use_sequencer)
    if not others:
        scene.render.use_sequencer = False
    scene[STATE_KEY] = state
    note = ""
    if scene.render.use_sequencer and others:
        note = (" — the sequencer has other image strips, so a render shows them: turn "
                "off Output > Post Processing > Sequencer to render the composite")
    return (f"NeRF frames {first}-{last} from {path.name} depth-combined with view layer "
            f"'{view_layer.name}'{note}")


def _strips(scene: bpy.types.Scene) -> list:
    return list(compat.sequencer_strips_all(scene)) if scene.sequence_editor else []


def _our_strips(scene: bpy.types.Scene) -> list:
    """The head's image strips that Render to Sequencer placed."""
    return [st for st in _strips(scene) if st.type == "IMAGE" and st.get("facecast_folder")]


def remove(scene: bpy.types.Scene) -> bool:
    """Take the combine out and put back what it changed; False if there was none."""
    state = scene.get(STATE_KEY)
    if state is None:
        return False
    state = dict(state)
    tree = compat.compositor_tree(scene)
    if tree is not None:
        for name in reversed(OUR_NODES):
            node = tree.nodes.get(name)
            if node is not None:
                tree.nodes.remove(node)
        out_node = tree.nodes.get(state.get("output", ""))
        if out_node is not None and state.get("output_created"):
            tree.nodes.remove(out_node)
        elif out_node is not None and state.get("source"):
            node = tree.nodes.get(state["source"][0])
            source = _find_output(node, state["source"][1]) if node is not None else None
            target = next((s for s in out_node.inputs if s.type == "RGBA"), None)
            if source is not None and target is not None:
                tree.links.new(source, target)
        if state.get("tree_created"):
            compat.drop_compositor_tree(scene, tree)
    compat.set_compositor_uses_nodes(scene, bool(state.get("use_nodes", True)))
    scene.render.use_compositing = bool(state.get("use_compositing", True))
    scene.render.use_sequencer = bool(state.get("use_sequencer", scene.render.use_sequencer))
    strips = {st.name: st for st in _strips(scene)}
    for name in state.get("muted", []):
        if name in strips:
            strips[name].mute = False
    for name in (NERF, DEPTH):
        image = bpy.data.images.get(name)
        if image is not None and image.users == 0:
            bpy.data.images.remove(image)
    del scene[STATE_KEY]
    return True
