"""What drives what on a rig, minus Blender: ARKit channels -> shape keys or pose actions.

A *target* is what the generated weights move: a shape key of a face mesh, or a pose
action of a bone rig (a pose the animator made, one frame of bone transforms, as in a
pose library — the idea Rhubarb Lip Sync NG uses for its mouth cues, here driven by
continuous ARKit-52 weights). Each target is driven by a :class:`Drive`:

* **by name** — the target's name reads as one ARKit name, in any naming style
  (``jawOpen``, ``FC_jaw_open``, ``mouthSmile.L``; the rules of
  :mod:`shared.shape_key_mapping`); its weight is that channel's weight.
* **by group** — a pose for a viseme or an expression covers several channels. Its
  channels are written as ARKit names joined by ``+``, each optionally ``*share``:
  ``mouthSmileLeft+mouthSmileRight`` (the weight is their mean) or
  ``jawOpen*0.7+mouthFunnel*0.3``. A pose action declares it in its custom property
  ``facecast_channels``; an override row may declare it for any target.
* **by override** — a row of the panel's mapping list, ``ARKit name(s) -> target``;
  overrides always win, and an empty target leaves a channel unmapped on purpose.

The weight of a target at a frame is ``clip(sum(share * channel weight), 0, 1)``.
The report says what drives what, what is missing and which candidates drive nothing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..shared.blendshapes import ARKIT_BLENDSHAPES
from ..shared.errors import InputError
from ..shared.shape_key_mapping import match_shape_keys, report_gaps

SHAPE_KEYS = "shape key"
POSES = "pose action"
GROUP_PROPERTY = "facecast_channels"  # a pose action's custom property naming its channels
_LOWER_ARKIT = {n.lower(): n for n in ARKIT_BLENDSHAPES}
_TERM = re.compile(r"^\s*([A-Za-z]+)\s*(?:\*\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?))?\s*$")


@dataclass(frozen=True)
class Drive:
    """One target and the ARKit channels that move it, with each channel's share."""

    target: str
    channels: tuple[tuple[str, float], ...]
    how: str  # "name" | "group" | "override"

    @property
    def label(self) -> str:
        """``jawOpen`` or ``mouthSmileLeft+mouthSmileRight`` (shares shown when uneven)."""
        even = len({round(c, 6) for _, c in self.channels}) == 1 and \
            abs(sum(c for _, c in self.channels) - 1.0) < 1e-6
        return "+".join(n if even else f"{n}*{c:g}" for n, c in self.channels)

    def weights(self, blendshapes: np.ndarray) -> np.ndarray:
        """``[T]`` weight of this target from ``[T, 52]`` ARKit weights."""
        out = np.zeros(len(blendshapes), np.float32)
        for name, share in self.channels:
            out += share * blendshapes[:, ARKIT_BLENDSHAPES.index(name)]
        return np.clip(out, 0.0, 1.0)


@dataclass
class RigMapping:
    """Every drive of one rig, and what is left over."""

    noun: str  # SHAPE_KEYS | POSES
    drives: list[Drive] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # ARKit channels that drive nothing
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)  # candidate targets driven by nothing
    overrides: dict[str, str] = field(default_factory=dict)  # rows applied, spec -> target

    @property
    def channels(self) -> list[str]:
        """ARKit channels that drive at least one target, in ARKit order."""
        used = {n for d in self.drives for n, _ in d.channels}
        return [n for n in ARKIT_BLENDSHAPES if n in used]

    @property
    def targets(self) -> list[str]:
        return [d.target for d in self.drives]

    def single(self) -> dict[str, str]:
        """ARKit name -> target for targets driven by exactly that one channel."""
        return {d.channels[0][0]: d.target for d in self.drives
                if len(d.channels) == 1 and d.channels[0][1] == 1.0}

    def target_weights(self, blendshapes: np.ndarray) -> dict[str, np.ndarray]:
        """Target -> ``[T]`` weights from ``[T, 52]`` ARKit weights."""
        return {d.target: d.weights(blendshapes) for d in self.drives}

    def report(self) -> str:
        """One paragraph for the panel: counts, what drives what, gaps, leftovers."""
        plural = f"{self.noun}s"
        parts = [f"{len(self.channels)}/{len(ARKIT_BLENDSHAPES)} ARKit channels drive "
                 f"{len(self.drives)} {plural}"]
        # Shape-key rigs map 1:1 by name and would list 52 lines: show only the drives
        # that are not a plain name match there; pose libraries are short, show all.
        shown = [d for d in self.drives if self.noun == POSES or d.how != "name"]
        if shown:
            parts.append("; ".join(f"{d.label} -> {d.target}" for d in shown))
        parts += report_gaps(self.missing, self.ambiguous, self.overrides, self.unused, plural)
        return "; ".join(parts)


def parse_channels(spec: str, where: str) -> tuple[tuple[str, float], ...]:
    """``"mouthSmileLeft+mouthSmileRight"`` -> ((name, 0.5), (name, 0.5)).

    A term without ``*share`` gets ``1/n`` (the mean); names are ARKit names in any
    letter case. ``where`` names the declaration in error messages.
    """
    terms = [t for t in str(spec).split("+")]
    if not spec.strip() or any(not t.strip() for t in terms):
        raise InputError(f"{where}: {spec!r} is not a list of ARKit channels",
                         "write ARKit names joined by +, e.g. mouthSmileLeft+mouthSmileRight")
    out: dict[str, float] = {}
    for term in terms:
        m = _TERM.match(term)
        name = _LOWER_ARKIT.get(m.group(1).lower()) if m else None
        if name is None:
            close = difflib.get_close_matches(term.split("*")[0].strip(), ARKIT_BLENDSHAPES,
                                              n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            raise InputError(f"{where}: {term.strip()!r} is not an ARKit channel",
                             f"{hint}use the 52 ARKit names, e.g. jawOpen, optionally *share")
        if name in out:
            raise InputError(f"{where}: {name} is listed twice", "list each channel once")
        share = float(m.group(2)) if m.group(2) is not None else 1.0 / len(terms)
        if not 0.0 < share <= 10.0:
            raise InputError(f"{where}: the share of {name} is {share:g}",
                             "use a share above 0 (1 = the channel's full weight)")
        out[name] = share
    return tuple(out.items())


def _is_group(spec: str) -> bool:
    return "+" in spec or "*" in spec


def map_rig(candidates: Sequence[str], noun: str, overrides: Mapping[str, str] | None = None,
            groups: Mapping[str, str] | None = None) -> RigMapping:
    """Map the 52 ARKit channels to ``candidates`` (shape-key or pose-action names).

    ``overrides``: panel rows, ARKit name or group -> target ("" = leave unmapped).
    ``groups``: target -> channel group declared on the target itself.
    """
    names = list(dict.fromkeys(str(n) for n in candidates))
    overrides = {str(k).strip(): str(v) for k, v in (overrides or {}).items() if str(k).strip()}
    single = {k: v for k, v in overrides.items() if not _is_group(k)}
    group_rows = {k: v for k, v in overrides.items() if _is_group(k)}

    drives: list[Drive] = []
    grouped: dict[str, Drive] = {}
    for target, spec in (groups or {}).items():
        if target in names:
            grouped[target] = Drive(target, parse_channels(spec, f"{noun} {target!r}"),
                                    "group")
    for spec, target in group_rows.items():
        if target not in names:
            close = difflib.get_close_matches(target, names, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            raise InputError(f'Override {spec} -> "{target}": the face has no {noun} '
                             f'"{target}"', f"{hint}pick an existing {noun}")
        if target in single.values():
            raise InputError(f'"{target}" is overridden twice', "give it one row")
        grouped[target] = Drive(target, parse_channels(spec, f"override {spec!r}"), "override")

    matched = match_shape_keys([n for n in names if n not in grouped], single, noun=noun)
    for arkit, target in matched.mapping.items():
        drives.append(Drive(target, ((arkit, 1.0),),
                            "override" if arkit in matched.overrides else "name"))
    drives.extend(grouped[t] for t in names if t in grouped)
    result = RigMapping(noun, drives, ambiguous=dict(matched.ambiguous),
                        unused=list(matched.unused), overrides={**single, **group_rows})
    used = set(result.channels)
    unmapped = {a for a, t in matched.overrides.items() if not t}  # left out on purpose
    result.missing = [n for n in ARKIT_BLENDSHAPES
                      if n not in used and n not in matched.ambiguous and n not in unmapped]
    return result
