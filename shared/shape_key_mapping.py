"""Match a rig's shape-key names to the 52 ARKit blendshapes, whatever the naming style.

Rigs from different tools spell the same shape differently: ``jawOpen``, ``JawOpen``,
``jaw_open``, ``JAW_OPEN``, ``jaw-open``, ``Jaw Open``; sides as ``mouthSmile_L``,
``mouthSmileL``, ``mouthSmile.L``, ``mouthSmile_Left``, ``MouthSmileLeft``,
``mouthSmile_l`` or ``Left_mouthSmile``; and exporters add prefixes such as
``blendShape1.jawOpen``, ``Face.jawOpen``, ``ARKit_jawOpen`` or ``bs_jawOpen``.

Both sides are reduced to the same canonical form: words (split at separators and
camelCase humps), lower-cased, with a leading or trailing side word (L/Left/R/Right)
taken out as the side. A key matches an ARKit name when the sides agree and the key's
words *end with* the ARKit name's words, so any prefix is allowed. ARKit's own
``mouthLeft``/``jawLeft`` read as "mouth"/"jaw" + side, and so do ``mouth_L``/``Jaw Left``.

Rules that keep the result trustworthy:
* "Basis" (Blender's reference key) is never a target; the add-on also leaves out the
  mesh's actual reference key whatever its name.
* Several keys for one ARKit name: an exact-name key wins, then a key without a prefix;
  otherwise the name is *ambiguous* and left unmapped until an override settles it.
* A key is never given to two ARKit names.
* Overrides (ARKit name → key name) always win; an empty key name means "leave unmapped".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .blendshapes import ARKIT_BLENDSHAPES
from .errors import InputError

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SIDES = {"l": "l", "left": "l", "r": "r", "right": "r"}
_REFERENCE_NAMES = {"basis"}


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(name)]


def _split_side(words: list[str]) -> tuple[list[str], str | None]:
    """Take a trailing (preferred) or leading side word out of the words."""
    if len(words) > 1 and words[-1] in _SIDES:
        return words[:-1], _SIDES[words[-1]]
    if len(words) > 1 and words[0] in _SIDES:
        return words[1:], _SIDES[words[0]]
    return words, None


def _canonical(name: str) -> tuple[str, str | None]:
    base, side = _split_side(_words(name))
    return "".join(base), side


# (joined base words, side) -> ARKit name; e.g. ("mouthsmile", "l") -> "mouthSmileLeft".
_ARKIT_BY_FORM: dict[tuple[str, str | None], str] = {_canonical(n): n for n in ARKIT_BLENDSHAPES}
assert len(_ARKIT_BY_FORM) == len(ARKIT_BLENDSHAPES)


def _is_reference(name: str) -> bool:
    return name.strip().lower() in _REFERENCE_NAMES


def arkit_match(key_name: str) -> tuple[str, bool] | None:
    """The ARKit name a shape key reads as, and whether it carried a prefix; else None."""
    if _is_reference(key_name):
        return None
    words = _words(key_name)
    readings = [_split_side(words)]
    last = words[-1] if words else ""
    if readings[0][1] is None:  # all-lowercase "mouthsmileleft": side fused into a word
        for suffix, side in (("left", "l"), ("right", "r")):
            if last.endswith(suffix) and len(last) > len(suffix):
                readings.append(([*words[:-1], last[: -len(suffix)]], side))
    for base, side in readings:
        for start in range(len(base)):  # longest tail first: fewest prefix words
            hit = _ARKIT_BY_FORM.get(("".join(base[start:]), side))
            if hit is not None:
                return hit, start > 0
    return None


@dataclass
class ShapeKeyMapping:
    """Result of matching: which key drives each ARKit channel, and what is left over."""

    mapping: dict[str, str] = field(default_factory=dict)      # ARKit name -> key name
    missing: list[str] = field(default_factory=list)           # ARKit names with no key
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # ARKit -> candidate keys
    unused: list[str] = field(default_factory=list)            # keys driving nothing
    overrides: dict[str, str] = field(default_factory=dict)    # overrides applied

    @property
    def complete(self) -> bool:
        return len(self.mapping) == len(ARKIT_BLENDSHAPES)

    def key_columns(self) -> dict[str, int]:
        """Shape-key name -> column of the ``blendshapes[T, 52]`` array that drives it."""
        return {key: ARKIT_BLENDSHAPES.index(arkit) for arkit, key in self.mapping.items()}

    def report(self) -> str:
        """One human-readable paragraph for the add-on panel and the CLI."""
        return "; ".join([f"{len(self.mapping)}/{len(ARKIT_BLENDSHAPES)} ARKit shapes mapped",
                          *report_gaps(self.missing, self.ambiguous, self.overrides,
                                       self.unused, "shape keys")])


def report_gaps(missing: list[str], ambiguous: dict[str, list[str]],
                overrides: dict[str, str], unused: list[str], unused_noun: str) -> list[str]:
    """The parts of a mapping report after its headline: what is missing, ambiguous,
    overridden and left unused (also the add-on's rig mapping report)."""
    parts = []
    if missing:
        parts.append(f"missing: {', '.join(missing)}")
    if ambiguous:
        parts.append("ambiguous (add an override): " + "; ".join(
            f"{a} <- {' | '.join(keys)}" for a, keys in ambiguous.items()))
    if overrides:
        parts.append("overrides applied: " + ", ".join(
            f"{a} -> {k or '(none)'}" for a, k in overrides.items()))
    if unused:
        parts.append(f"unused {unused_noun}: {', '.join(unused)}")
    return parts


def _check_overrides(overrides: Mapping[str, str], key_names: Sequence[str],
                     noun: str = "shape key") -> dict[str, str]:
    """Validate overrides and return them keyed by exact ARKit name (``noun`` names
    what the targets are in messages: "shape key", "pose action")."""
    lower_arkit = {n.lower(): n for n in ARKIT_BLENDSHAPES}
    existing = set(key_names)
    checked: dict[str, str] = {}
    used_by: dict[str, str] = {}
    for raw_arkit, key in overrides.items():
        arkit = lower_arkit.get(str(raw_arkit).strip().lower())
        if arkit is None:
            close = difflib.get_close_matches(str(raw_arkit), ARKIT_BLENDSHAPES, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            if str(raw_arkit) in existing and str(key).lower() in lower_arkit:
                hint = f"the override looks reversed; write it as ARKit name -> {noun}. "
            raise InputError(f'Override names "{raw_arkit}", which is not an ARKit blendshape',
                             f"{hint}use one of the 52 ARKit names, e.g. jawOpen")
        if arkit in checked:
            raise InputError(f"{arkit} is overridden twice", "keep one override per ARKit name")
        key = "" if key is None else str(key)
        if key:
            if key not in existing:
                close = difflib.get_close_matches(key, list(existing), n=1)
                hint = f'did you mean "{close[0]}"? ' if close else ""
                raise InputError(f'Override {arkit} -> "{key}": the face has no {noun} '
                                 f'"{key}"', f"{hint}pick an existing {noun}, or clear "
                                 "the override")
            if _is_reference(key):
                raise InputError(f'Override {arkit} -> "{key}" targets the reference key',
                                 "pick a shape key other than the Basis")
            if key in used_by:
                raise InputError(f'Overrides {used_by[key]} and {arkit} both drive {noun} '
                                 f'"{key}"', f"give each ARKit name its own {noun} (or "
                                 "drive one target by a group: a+b -> target)")
            used_by[key] = arkit
        checked[arkit] = key
    return checked


def match_shape_keys(key_names: Sequence[str],
                     overrides: Mapping[str, str] | None = None, *,
                     noun: str = "shape key") -> ShapeKeyMapping:
    """Map ARKit names to the rig's shape keys (see the module docstring for the rules).

    The same rules match any named targets, e.g. a bone rig's pose actions; ``noun``
    says what they are in error messages.
    """
    names = list(dict.fromkeys(str(n) for n in key_names))
    applied = _check_overrides(overrides or {}, names, noun)
    taken = {key for key in applied.values() if key}

    candidates: dict[str, list[tuple[str, bool]]] = {}
    for key in names:
        if key in taken:
            continue
        hit = arkit_match(key)
        if hit is not None:
            candidates.setdefault(hit[0], []).append((key, hit[1]))

    result = ShapeKeyMapping(overrides=applied)
    for arkit in ARKIT_BLENDSHAPES:
        if arkit in applied:
            if applied[arkit]:
                result.mapping[arkit] = applied[arkit]
            continue
        found = candidates.get(arkit, [])
        best = ([k for k, _ in found if k == arkit] or [k for k, pre in found if not pre]
                or [k for k, _ in found])
        if len(best) == 1:
            result.mapping[arkit] = best[0]
        elif best:
            result.ambiguous[arkit] = best
        else:
            result.missing.append(arkit)
    # arkit_match gives each key at most one ARKit name; guard that invariant anyway.
    assert len(set(result.mapping.values())) == len(result.mapping)
    mapped = set(result.mapping.values())
    result.unused = [k for k in names if k not in mapped and not _is_reference(k)]
    return result
