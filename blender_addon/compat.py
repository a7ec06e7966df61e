"""Version-tolerant wrappers over Blender APIs that changed between 4.2 LTS and 5.x.

Why: Facecast supports Blender 4.2 LTS through 5.x from one code base, and users cite
"no breakage on Blender upgrades" as a top request. Every API that moved is reached
through this module, which picks the right spelling by *feature detection* (hasattr),
never by version number, so point releases that back-port or drop an alias still work.

What changed (from the Python API change logs and release notes):

* Sequencer: 4.2/4.3 use ``SequenceEditor.sequences`` / ``sequences_all``; 4.4 renamed
  them ``strips`` / ``strips_all`` (old names kept as deprecated aliases in 4.4/4.5);
  5.0 removed the old names. ``new_image`` / ``new_sound`` kept their arguments.
* Sequencer scene: 5.0 added ``context.sequencer_scene`` (the VSE can show a scene other
  than the active one); before 5.0 the VSE always shows ``context.scene``.
* Actions: 4.2/4.3 keep F-curves directly on ``Action.fcurves`` and key the ID type
  with ``Action.id_root``. 4.4 introduced slotted actions (slots + layers + keyframe
  strips + channelbags) and ``AnimData.action_slot``; 4.4/4.5 still offer
  ``Action.fcurves`` as a legacy proxy for the first slot; 5.0 removed it.
* NLA: the same ``nla_tracks.new()`` / ``track.strips.new(name, start, action)`` in all
  versions; from 4.4 a strip also plays one *slot* of its action
  (``NlaStrip.action_slot``), which must be the slot made for the ID it animates.
* Compositor: 4.x keeps one embedded tree per scene (``scene.use_nodes`` /
  ``scene.node_tree``) ending in a Composite node; 5.0 points the scene at a
  compositor node group (``scene.compositing_node_group``) whose Group Output is the
  result, and turned node options into inputs (Z Combine's ``use_alpha`` /
  ``use_antialias_z`` became its "Use Alpha" / "Anti-Alias" sockets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bpy
import numpy as np

# --------------------------------------------------------------------------------------
# Sequencer


def ensure_sequence_editor(scene: bpy.types.Scene) -> bpy.types.SequenceEditor:
    """Return the scene's sequence editor, creating it when the scene has none yet."""
    if scene.sequence_editor is None:
        scene.sequence_editor_create()
    return scene.sequence_editor


def sequencer_strips(scene: bpy.types.Scene) -> Any:
    """Top-level strips collection (``strips`` in 4.4+, ``sequences`` before)."""
    editor = ensure_sequence_editor(scene)
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def sequencer_strips_all(scene: bpy.types.Scene) -> Any:
    """All strips including those inside meta strips (``strips_all`` / ``sequences_all``)."""
    editor = ensure_sequence_editor(scene)
    return editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all


def sequencer_scene(context: bpy.types.Context) -> bpy.types.Scene | None:
    """The scene the sequencer shows: ``context.sequencer_scene`` (5.0+) or ``context.scene``.

    In 5.0 a workspace may have no sequencer scene yet (None); we then fall back to the
    active scene, which is also what 4.x always used, so the user still gets a result.
    """
    scene = getattr(context, "sequencer_scene", None)
    return scene if scene is not None else context.scene


def new_image_strip(
    scene: bpy.types.Scene,
    name: str,
    filepath: str,
    channel: int,
    frame_start: int,
    fit_method: str = "ORIGINAL",
) -> Any:
    """Add an image strip (one frame of ``filepath``; append more via ``strip.elements``)."""
    return sequencer_strips(scene).new_image(
        name=name,
        filepath=filepath,
        channel=channel,
        frame_start=frame_start,
        fit_method=fit_method,
    )


def new_sound_strip(
    scene: bpy.types.Scene, name: str, filepath: str, channel: int, frame_start: int
) -> Any:
    """Add a sound strip for ``filepath`` starting at ``frame_start``."""
    return sequencer_strips(scene).new_sound(
        name=name, filepath=filepath, channel=channel, frame_start=frame_start
    )


# --------------------------------------------------------------------------------------
# Compositor


def compositor_tree(scene: bpy.types.Scene) -> Any | None:
    """The scene's compositor node tree (a node group in 5.0+, embedded before; in 4.x
    it may exist with "Use Nodes" off), or None."""
    if hasattr(scene, "compositing_node_group"):
        return scene.compositing_node_group
    return scene.node_tree


def ensure_compositor_tree(scene: bpy.types.Scene) -> tuple[Any, bool]:
    """``(tree, created)``: the compositor tree, made (and switched on) if missing."""
    if hasattr(scene, "compositing_node_group"):
        if scene.compositing_node_group is not None:
            return scene.compositing_node_group, False
        tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
        scene.compositing_node_group = tree
        return tree, True
    created = scene.node_tree is None
    scene.use_nodes = True
    return scene.node_tree, created


def drop_compositor_tree(scene: bpy.types.Scene, tree: Any) -> None:
    """Undo :func:`ensure_compositor_tree`'s creation."""
    if hasattr(scene, "compositing_node_group"):
        scene.compositing_node_group = None
        bpy.data.node_groups.remove(tree)
    else:
        scene.use_nodes = False


def compositor_uses_nodes(scene: bpy.types.Scene) -> bool:
    """Whether 4.x's "Use Nodes" is on (5.0+ has no switch: a group set is used)."""
    return True if hasattr(scene, "compositing_node_group") else bool(scene.use_nodes)


def set_compositor_uses_nodes(scene: bpy.types.Scene, on: bool) -> None:
    if not hasattr(scene, "compositing_node_group"):
        scene.use_nodes = on


def compositor_output(tree: Any) -> tuple[Any | None, Any | None]:
    """``(node, input socket)`` where the tree's result goes: the Composite node (4.x)
    or the Group Output's first colour input (5.0+); ``(None, None)`` if there is none."""
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeComposite":
            return node, node.inputs[0]
        if node.bl_idname == "NodeGroupOutput" and node.is_active_output:
            image = next((s for s in node.inputs if s.type == "RGBA"), None)
            if image is not None:
                return node, image
    return None, None


def new_compositor_output(tree: Any) -> tuple[Any, Any]:
    """Make the tree's result node (4.x: Composite; 5.0+: Group Output with an Image
    output on the group's interface)."""
    if hasattr(tree, "interface"):
        if not any(i.item_type == "SOCKET" and i.in_out == "OUTPUT"
                   and i.socket_type == "NodeSocketColor" for i in tree.interface.items_tree):
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        node = tree.nodes.new("NodeGroupOutput")
        node.is_active_output = True
        return node, next(s for s in node.inputs if s.type == "RGBA")
    node = tree.nodes.new("CompositorNodeComposite")
    return node, node.inputs[0]


def set_to_straight_alpha(node: Any) -> None:
    """An Alpha Convert node (CompositorNodePremulKey) set to premultiplied -> straight
    (4.x: ``mapping`` enum; 5.0+: its "Type" menu input)."""
    if "Type" in node.inputs:
        node.inputs["Type"].default_value = "To Straight"
    else:
        node.mapping = "PREMUL_TO_STRAIGHT"


def set_node_option(node: Any, prop: str, socket: str, value: Any) -> None:
    """A node option that is a property in 4.x and an input socket in 5.0+."""
    if socket in node.inputs:
        node.inputs[socket].default_value = value
    else:
        setattr(node, prop, value)


# --------------------------------------------------------------------------------------
# Actions and F-curves


def has_slotted_actions() -> bool:
    """True on Blender 4.4+, where actions have slots, layers and channelbags."""
    return hasattr(bpy.types, "ActionSlot")


def ensure_slot(action: bpy.types.Action, id_data: bpy.types.ID) -> Any | None:
    """Return the slot of ``action`` meant for ``id_data``, creating it if needed.

    Returns None on 4.2/4.3, which have no slots. The slot is named after the ID so
    Blender's own auto-assignment (which matches slot names) agrees with ours.
    """
    if not has_slotted_actions():
        return None
    for slot in action.slots:
        if slot.target_id_type == id_data.id_type and slot.name_display == id_data.name:
            return slot
    return action.slots.new(id_type=id_data.id_type, name=id_data.name)


def ensure_channelbag(action: bpy.types.Action, slot: Any) -> Any:
    """Return the channelbag holding ``slot``'s F-curves, creating layer/strip if needed.

    Blender 4.4-5.0 support a single layer with a single keyframe strip, so we reuse
    the first ones when present instead of stacking new layers.
    """
    if len(action.layers) == 0:
        action.layers.new("Layer")
    layer = action.layers[0]
    if len(layer.strips) == 0:
        layer.strips.new(type="KEYFRAME")
    return layer.strips[0].channelbag(slot, ensure=True)


def fcurves_for(action: bpy.types.Action, id_data: bpy.types.ID) -> Any:
    """The F-curve collection in ``action`` that animates ``id_data``.

    4.4+: the channelbag of the ID's slot. 4.2/4.3: ``action.fcurves``, after setting
    ``id_root`` so Blender only offers the action for this kind of ID. Either way the
    result supports ``.new(data_path, index=...)``, ``.find(...)`` and iteration.
    """
    slot = ensure_slot(action, id_data)
    if slot is not None:
        return ensure_channelbag(action, slot).fcurves
    if getattr(action, "id_root", None) in (None, "", "UNSPECIFIED") or len(action.fcurves) == 0:
        action.id_root = id_data.id_type
    return action.fcurves


def assign_action(id_data: bpy.types.ID, action: bpy.types.Action) -> bpy.types.Action | None:
    """Make ``id_data`` play ``action`` (and its slot on 4.4+); return the action it had.

    The previous action gets a fake user so it survives saving even with no other
    users: we must never make an animator's existing work disappear.
    """
    anim = id_data.animation_data or id_data.animation_data_create()
    previous = anim.action
    if previous is not None and previous != action and previous.users <= 1:
        previous.use_fake_user = True
    anim.action = action
    slot = ensure_slot(action, id_data)
    if slot is not None and anim.action_slot != slot:
        anim.action_slot = slot
    return previous


def _enum_value(struct: type, prop: str, identifier: str) -> int:
    return struct.bl_rna.properties[prop].enum_items[identifier].value


def write_fcurve(
    fcurves: Any,
    data_path: str,
    frames: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    index: int = 0,
    interpolation: str = "LINEAR",
    group: str = "",
    replace: bool = False,
) -> bpy.types.FCurve:
    """Write one F-curve with bulk ``foreach_set`` (fast for thousands of keys).

    Per-frame ARKit weights are dense samples, so LINEAR is the default interpolation:
    Bezier with auto handles would overshoot between neighbouring frames. An existing
    curve with keys is only overwritten when ``replace`` is True, so a caller cannot
    silently destroy an animator's keys.
    """
    frames = np.asarray(frames, dtype=np.float32).ravel()
    values = np.asarray(values, dtype=np.float32).ravel()
    if frames.shape != values.shape:
        raise ValueError(f"{data_path}: {frames.size} frames but {values.size} values")
    if not np.all(np.isfinite(frames)) or not np.all(np.isfinite(values)):
        raise ValueError(f"{data_path}: frames and values must be finite numbers")
    if frames.size > 1 and np.any(np.diff(frames) <= 0):
        raise ValueError(f"{data_path}: frames must be strictly increasing")

    fcurve = fcurves.find(data_path, index=index)
    if fcurve is not None and len(fcurve.keyframe_points) and not replace:
        raise ValueError(f"{data_path}[{index}] already has keys; pass replace=True to overwrite")
    if fcurve is None:
        fcurve = _new_fcurve(fcurves, data_path, index, group)
    else:
        fcurve.keyframe_points.clear()

    n = frames.size
    points = fcurve.keyframe_points
    points.add(n)
    co = np.empty(2 * n, dtype=np.float32)
    co[0::2], co[1::2] = frames, values
    points.foreach_set("co", co)
    # Handles on the points themselves keep BEZIER/auto-clamped evaluation sane too.
    points.foreach_set("handle_left", co)
    points.foreach_set("handle_right", co)
    interp = _enum_value(bpy.types.Keyframe, "interpolation", interpolation)
    points.foreach_set("interpolation", np.full(n, interp, dtype=np.int32))
    fcurve.update()
    return fcurve


def _new_fcurve(fcurves: Any, data_path: str, index: int, group: str) -> bpy.types.FCurve:
    """A new F-curve in ``group``, whichever way this Blender takes the group.

    5.0 channelbags take ``group_name``, 4.2/4.3 ``action.fcurves`` take ``action_group``;
    4.4/4.5 channelbags take neither, so the group is made on the channelbag (the
    collection's owner) and assigned afterwards.
    """
    params = fcurves.bl_rna.functions["new"].parameters
    for name in ("group_name", "action_group"):
        if group and name in params:
            return fcurves.new(data_path, index=index, **{name: group})
    fcurve = fcurves.new(data_path, index=index)
    owner = getattr(fcurves, "data", None)
    groups = getattr(owner, "groups", None)
    if group and groups is not None:
        fcurve.group = groups.get(group) or groups.new(group)
    return fcurve


def action_fcurves(action: bpy.types.Action, id_type: str = "") -> list[bpy.types.FCurve]:
    """Every F-curve of ``action`` (read-only), optionally only those of slots for IDs of
    ``id_type`` (e.g. "OBJECT") on 4.4+; 4.2/4.3 check ``id_root`` instead."""
    if not has_slotted_actions():
        root = getattr(action, "id_root", "")
        if id_type and root not in ("", None, id_type):
            return []
        return list(action.fcurves)
    out: list[bpy.types.FCurve] = []
    for slot in action.slots:
        if id_type and slot.target_id_type not in (id_type, "UNSPECIFIED"):
            continue
        for layer in action.layers:
            for strip in layer.strips:
                bag = strip.channelbag(slot)
                if bag is not None:
                    out.extend(bag.fcurves)
    return out


def push_nla_strip(id_data: bpy.types.ID, action: bpy.types.Action, track_name: str,
                   strip_name: str, start: int) -> tuple[Any, Any]:
    """A new NLA track on top of ``id_data``'s stack holding one strip of ``action``;
    returns (track, strip).

    The active action is left alone, so whatever the animator keys keeps layering on
    top of the NLA. On 4.4+ the strip plays the action's slot for this ID.
    """
    anim = id_data.animation_data or id_data.animation_data_create()
    track = anim.nla_tracks.new()
    track.name = track_name
    strip = track.strips.new(strip_name, int(start), action)
    slot = ensure_slot(action, id_data)
    if slot is not None and getattr(strip, "action_slot", slot) != slot:
        strip.action_slot = slot
    anim.use_nla = True
    return track, strip


def assigned_fcurves(id_data: bpy.types.ID) -> list[bpy.types.FCurve]:
    """The F-curves that currently animate ``id_data`` (read-only; creates nothing).

    4.4+: the channelbag of the assigned action's assigned slot (5.0 has no
    ``Action.fcurves``); 4.2/4.3: ``action.fcurves``. Empty when nothing is assigned.
    Used to *sample* animation by evaluating curves instead of stepping the scene's
    frame, which would re-evaluate the whole depsgraph once per frame.
    """
    anim = getattr(id_data, "animation_data", None)
    action = anim.action if anim is not None else None
    if action is None:
        return []
    if not has_slotted_actions():
        return list(action.fcurves)
    slot = anim.action_slot
    if slot is None:
        return []
    for layer in action.layers:
        for strip in layer.strips:
            bag = strip.channelbag(slot)
            if bag is not None:
                return list(bag.fcurves)
    return []


def find_assigned_fcurve(id_data: bpy.types.ID, data_path: str,
                         index: int = 0) -> bpy.types.FCurve | None:
    """The F-curve animating ``data_path[index]`` of ``id_data``, if any."""
    for fcurve in assigned_fcurves(id_data):
        if fcurve.data_path == data_path and fcurve.array_index == index:
            return fcurve
    return None


def evaluate_fcurve(fcurve: bpy.types.FCurve, frames: Sequence[float] | np.ndarray) -> np.ndarray:
    """``fcurve`` evaluated at each frame (float32), honouring muted curves as absent."""
    return np.fromiter((fcurve.evaluate(float(f)) for f in frames), dtype=np.float32,
                       count=len(frames))
