"""The emotion vocabulary: names, keyed emotion tracks, and per-frame weight arrays.

Emotions are the eight MEAD categories in ``EMOTIONS`` (one row each in
``shared.emotion_profiles``); that order is the column order of
every ``emotion_weights[T, 8]`` array (CLI, add-on sliders, wire protocol, model input).
Weights lie in [0, 1] and may mix; a per-frame ``intensity`` in [0, 1] scales the mix.

An emotion *track* is a list of ``EmotionKey`` (frame, weights, intensity), keyed like an
animator keys an F-curve. The CLI writes a track as a string::

    track     := key ("," key)*
    key       := frame ":" mix ["@" intensity]
    mix       := term ("+" term)*
    term      := emotion ["*" weight]
    frame     := non-negative integer (the scene frame the key sits on)
    emotion   := a name from EMOTIONS or EMOTION_ALIASES (case-insensitive)
    weight    := number in [0, 1], default 1
    intensity := number in [0, 1], default 1

e.g. ``"0:neutral,40:angry@0.7,90:happy+surprised@0.5,120:happy*0.6+sad*0.4@0.8"``.
Whitespace around tokens is ignored. Emotions a key does not name get weight 0.

The JSON form is a list of ``{"frame": int, "weights": {name: float}, "intensity": float}``
(``intensity`` optional, default 1). ``load_emotion_track`` takes either form, or a path
to a ``.json`` file.

Between keys, weights and intensity are blended with *smoothstep* (3t² − 2t³), not
linearly: it matches the ease-in/ease-out that Blender's default Bézier keys give, so a
track typed on the CLI moves the face like the same keys set on the add-on's sliders, and
the face never jerks at a key because the blend's velocity is zero there. Before the first
key and after the last the nearest key is held (F-curve "constant" extrapolation).
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .emotion_profiles import EMOTION_PROFILES
from .errors import InputError

#: The names, in ``EMOTION_PROFILES`` order (the one table; a new emotion is a row there).
EMOTIONS: tuple[str, ...] = tuple(p.name for p in EMOTION_PROFILES)
EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}

#: Other spellings people type -> the emotion's name (from each profile's ``aliases``).
EMOTION_ALIASES: dict[str, str] = {a: p.name for p in EMOTION_PROFILES for a in p.aliases}

# Values outside [0, 1] by at most this much are float noise (e.g. Blender's float32
# sliders round-tripped) and are clipped rather than rejected.
RANGE_TOLERANCE = 1e-6

_VALID_LIST = ", ".join(EMOTIONS)
_EXAMPLE = '"0:neutral,40:angry@0.7,90:happy*0.6+sad*0.4@0.8"'


@dataclass(frozen=True)
class EmotionKey:
    """One key of an emotion track; validated on creation so every source is checked."""

    frame: int
    weights: dict[str, float] = field(default_factory=dict)
    intensity: float = 1.0

    def __post_init__(self) -> None:
        frame = self.frame
        if isinstance(frame, float) and frame.is_integer():
            frame = int(frame)  # JSON writers may emit 40.0 for 40
        if isinstance(frame, bool) or not isinstance(frame, int | np.integer):
            raise InputError(f"Emotion key frame {self.frame!r} is not a whole number",
                             "give frames as integers, e.g. 40")
        object.__setattr__(self, "frame", int(frame))
        if self.frame < 0:
            raise InputError(f"Emotion key frame {self.frame} is negative",
                             "use frame numbers >= 0")
        if not isinstance(self.weights, Mapping):
            raise InputError(f"Emotion weights at frame {self.frame} must be a mapping "
                             f"of emotion name to weight, got {self.weights!r}",
                             'write e.g. {"happy": 0.6, "sad": 0.4}')
        clean: dict[str, float] = {}
        spelled: dict[str, object] = {}
        for raw_name, raw_weight in self.weights.items():
            name = canonical_emotion(raw_name, where=f"at frame {self.frame}")
            if name in clean:
                raise InputError(f"Emotion {name!r} appears twice at frame {self.frame} "
                                 f"(as {spelled[name]!r} and {raw_name!r})",
                                 "name each emotion once per key")
            spelled[name] = raw_name
            clean[name] = _unit_value(raw_weight, f"weight of {name!r} at frame {self.frame}")
        # Absent means 0, so zero entries are dropped: equal faces compare equal.
        object.__setattr__(self, "weights", {n: w for n, w in clean.items() if w > 0.0})
        object.__setattr__(self, "intensity",
                           _unit_value(self.intensity, f"intensity at frame {self.frame}"))

    def vector(self) -> np.ndarray:
        """The weights as a float32[8] row in ``EMOTIONS`` order."""
        row = np.zeros(len(EMOTIONS), dtype=np.float32)
        for name, weight in self.weights.items():
            row[EMOTION_INDEX[name]] = weight
        return row


def canonical_emotion(name: object, where: str = "") -> str:
    """Resolve a user-typed emotion name (any case, or an alias) to its ``EMOTIONS`` name."""
    place = f" {where}" if where else ""
    if not isinstance(name, str):
        raise InputError(f"Emotion name {name!r}{place} is not text",
                         f"use one of: {_VALID_LIST}")
    key = name.strip().lower()
    if key in EMOTION_INDEX:
        return key
    if key in EMOTION_ALIASES:
        return EMOTION_ALIASES[key]
    known = list(EMOTIONS) + list(EMOTION_ALIASES)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f'did you mean "{EMOTION_ALIASES.get(close[0], close[0])}"? ' if close else ""
    raise InputError(f'Unknown emotion "{name}"{place}',
                     f"{hint}valid emotions: {_VALID_LIST}")


def _unit_value(value: object, what: str) -> float:
    """A finite number in [0, 1] (tiny float overshoot clipped), else an InputError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise InputError(f"The {what} is {value!r}, not a number",
                         "give a number between 0 and 1")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"The {what} is {number} (not a finite number)",
                         "give a number between 0 and 1")
    if number < -RANGE_TOLERANCE or number > 1.0 + RANGE_TOLERANCE:
        raise InputError(f"The {what} is {number:g}, outside [0, 1]",
                         "give a number between 0 and 1")
    return min(max(number, 0.0), 1.0)


# ---------------------------------------------------------------- string form


def _parse_number(token: str, what: str, key_text: str) -> float:
    try:
        return float(token)
    except ValueError:
        raise InputError(f'The {what} "{token}" in emotion key "{key_text}" is not a number',
                         f"write a number between 0 and 1, e.g. {_EXAMPLE}") from None


def _parse_key(key_text: str) -> EmotionKey:
    frame_text, colon, rest = key_text.partition(":")
    if not colon:
        raise InputError(f'Emotion key "{key_text}" has no "frame:" part',
                         f"write keys as frame:emotion[@intensity], e.g. {_EXAMPLE}")
    frame_text = frame_text.strip()
    if not frame_text.lstrip("-").isdigit():
        raise InputError(f'The frame "{frame_text}" in emotion key "{key_text}" is not a '
                         "whole number", f"start each key with an integer frame, e.g. {_EXAMPLE}")
    mix_text, at, intensity_text = rest.partition("@")
    if "@" in intensity_text:
        raise InputError(f'Emotion key "{key_text}" has more than one "@"',
                         "give one intensity per key, after the whole mix")
    intensity = _parse_number(intensity_text.strip(), "intensity", key_text) if at else 1.0
    weights: dict[str, object] = {}
    for term in mix_text.split("+"):
        name_text, star, weight_text = term.partition("*")
        name_text = name_text.strip()
        if not name_text:
            raise InputError(f'Emotion key "{key_text}" has an empty emotion name',
                             f"write e.g. happy*0.6+sad*0.4; valid emotions: {_VALID_LIST}")
        weight = _parse_number(weight_text.strip(), f"weight of {name_text!r}",
                               key_text) if star else 1.0
        if name_text in weights:
            raise InputError(f'Emotion "{name_text}" appears twice in key "{key_text}"',
                             "name each emotion once per key")
        weights[name_text] = weight
    return EmotionKey(int(frame_text), weights, intensity)  # type: ignore[arg-type]


def parse_emotion_string(text: str) -> list[EmotionKey]:
    """Parse the CLI form (grammar in the module docstring) into a validated track."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("The emotion track is empty",
                         f"give at least one key, e.g. {_EXAMPLE}")
    keys = [_parse_key(part.strip()) for part in text.strip().strip(",").split(",")]
    return validate_track(keys)


def format_emotion_string(keys: Sequence[EmotionKey]) -> str:
    """Write a track back in the CLI form, so a track can be shown or saved as typed."""
    parts = []
    for key in validate_track(keys):
        # An all-zero key is "neutral*0", not "neutral", so the weights survive unchanged.
        terms = [n if w == 1.0 else f"{n}*{_num(w)}" for n, w in key.weights.items()]
        at = "" if key.intensity == 1.0 else f"@{_num(key.intensity)}"
        parts.append(f"{key.frame}:{'+'.join(terms) or 'neutral*0'}{at}")
    return ",".join(parts)


def _num(value: float) -> str:
    """Shortest text that reads back as exactly ``value``."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


# ---------------------------------------------------------------- JSON form


def to_json(keys: Sequence[EmotionKey], indent: int | None = None) -> str:
    """Serialise a track to the JSON form (list of frame/weights/intensity objects)."""
    return json.dumps([{"frame": k.frame, "weights": dict(k.weights), "intensity": k.intensity}
                       for k in validate_track(keys)], indent=indent)


def from_json(data: str | Sequence[object]) -> list[EmotionKey]:
    """Read a track from JSON text or an already-decoded list."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise InputError(f"The emotion track is not valid JSON ({exc})",
                             'write a list like [{"frame": 0, "weights": {"happy": 1}}]'
                             ) from None
    if not isinstance(data, list):
        raise InputError(f"The JSON emotion track is a {type(data).__name__}, not a list",
                         'write a list like [{"frame": 0, "weights": {"happy": 1}}]')
    keys = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "frame" not in item or "weights" not in item:
            raise InputError(f"JSON emotion key #{i} ({item!r}) lacks \"frame\" or \"weights\"",
                             'write each key as {"frame": 0, "weights": {"happy": 1}, '
                             '"intensity": 1}')
        extra = set(item) - {"frame", "weights", "intensity"}
        if extra:
            raise InputError(f"JSON emotion key #{i} has unknown field(s) {sorted(extra)}",
                             'use only "frame", "weights" and "intensity"')
        keys.append(EmotionKey(item["frame"], item["weights"], item.get("intensity", 1.0)))
    return validate_track(keys)


def load_emotion_track(source: str | os.PathLike[str]) -> list[EmotionKey]:
    """Accept a CLI string, JSON text, or a path to a ``.json`` file, and return a track."""
    if isinstance(source, os.PathLike) or (isinstance(source, str)
                                           and source.strip().lower().endswith(".json")):
        path = Path(source).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"Emotion track file {str(path)!r} does not exist",
                             "check the path, or pass the track as a string like "
                             f"{_EXAMPLE}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"Cannot read emotion track file {str(path)!r} ({exc})",
                             "pass a readable UTF-8 .json file") from None
        return from_json(text)
    if isinstance(source, str) and source.lstrip().startswith("["):
        return from_json(source)
    return parse_emotion_string(source)


# ---------------------------------------------------------------- tracks and arrays


def validate_track(keys: Sequence[EmotionKey]) -> list[EmotionKey]:
    """Check a track is non-empty with unique frames; return it sorted by frame."""
    if not keys:
        raise InputError("The emotion track has no keys",
                         f"give at least one key, e.g. {_EXAMPLE}")
    ordered = sorted(keys, key=lambda k: k.frame)
    for before, after in itertools.pairwise(ordered):
        if before.frame == after.frame:
            raise InputError(f"Two emotion keys sit on frame {after.frame}",
                             "keep one key per frame (merge them into one mix with '+')")
    return ordered


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def sample_emotion_track(keys: Sequence[EmotionKey], first_frame: int,
                         n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame ``(weights[T, 8], intensity[T])`` float32 for frames first..first+T-1."""
    if n_frames < 0:
        raise InputError(f"Cannot sample {n_frames} frames", "ask for 0 or more frames")
    track = validate_track(keys)
    key_frames = np.array([k.frame for k in track], dtype=np.float64)
    key_values = np.array([np.append(k.vector(), k.intensity) for k in track],
                          dtype=np.float64)
    frames = np.arange(first_frame, first_frame + n_frames, dtype=np.float64)
    right = np.clip(np.searchsorted(key_frames, frames, side="right"), 1, len(track) - 1)
    left = right - 1
    if len(track) == 1:
        values = np.repeat(key_values[:1], n_frames, axis=0)
    else:
        span = key_frames[right] - key_frames[left]
        t = _smoothstep(np.clip((frames - key_frames[left]) / span, 0.0, 1.0))[:, None]
        values = key_values[left] * (1.0 - t) + key_values[right] * t
    values = values.astype(np.float32)
    return np.ascontiguousarray(values[:, :-1]), np.ascontiguousarray(values[:, -1])


def validate_emotion_arrays(weights: object, intensity: object,
                            n_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check per-frame arrays (from Blender or the wire) and return float32 copies."""
    try:
        w = np.asarray(weights, dtype=np.float64)
        s = np.asarray(intensity, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"Emotion weights/intensity are not numeric arrays ({exc})",
                         "send weights as float[T, 8] and intensity as float[T]") from None
    if w.ndim != 2 or w.shape[1] != len(EMOTIONS):
        raise InputError(f"Emotion weights have shape {w.shape}, expected (frames, "
                         f"{len(EMOTIONS)})", f"send one column per emotion: {_VALID_LIST}")
    if s.shape != (w.shape[0],):
        raise InputError(f"Emotion intensity has shape {s.shape}, expected ({w.shape[0]},) "
                         "to match the weights", "send one intensity value per frame")
    if n_frames is not None and w.shape[0] != n_frames:
        raise InputError(f"Emotion arrays cover {w.shape[0]} frames, expected {n_frames}",
                         "sample the emotion sliders over the same frame range as the audio")
    for arr, label in ((w, "weight"), (s, "intensity")):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputError(f"Emotion {label} is NaN/inf at {_where(bad)}",
                             "re-key that emotion slider with a number between 0 and 1")
        out = (arr < -RANGE_TOLERANCE) | (arr > 1.0 + RANGE_TOLERANCE)
        if out.any():
            value = float(arr[np.unravel_index(np.argmax(out), arr.shape)])
            raise InputError(f"Emotion {label} {value:g} at {_where(out)} is outside [0, 1]",
                             "keep emotion sliders between 0 and 1")
    return (np.clip(w, 0.0, 1.0).astype(np.float32), np.clip(s, 0.0, 1.0).astype(np.float32))


@dataclass(frozen=True)
class EmotionArrays:
    """Per-frame emotion as checked where it arrives (the wire, the add-on's sliders):
    ``weights`` float32 [T, 8] in ``EMOTIONS`` order and ``intensity`` float32 [T], both
    in [0, 1]. Made by :meth:`checked`; the stages further in trust it."""

    weights: np.ndarray
    intensity: np.ndarray

    @classmethod
    def checked(cls, weights: object, intensity: object,
                n_frames: int | None = None) -> EmotionArrays:
        return cls(*validate_emotion_arrays(weights, intensity, n_frames))

    def __len__(self) -> int:
        return len(self.weights)


def _where(mask: np.ndarray) -> str:
    """Name the first flagged frame (and emotion column) so the user can find the key."""
    index = np.unravel_index(int(np.argmax(mask)), mask.shape)
    text = f"frame offset {int(index[0])}"
    return f"{text} ({EMOTIONS[int(index[1])]})" if mask.ndim == 2 else text


def dominant_emotions(weights: np.ndarray, intensity: np.ndarray | None = None,
                      min_strength: float = 0.05) -> list[str]:
    """Per-frame label of the strongest emotion (weight × intensity); ties go to the
    earlier name in ``EMOTIONS``, and frames whose strongest is below ``min_strength``
    read as "neutral" (a 2 % smile is not a happy face)."""
    w = np.asarray(weights, dtype=np.float64)
    s = np.ones(w.shape[0]) if intensity is None else np.asarray(intensity, dtype=np.float64)
    w, s = validate_emotion_arrays(w, s)
    strength = w * s[:, None]
    best = np.argmax(strength, axis=1)
    peak = strength[np.arange(len(best)), best]
    return [EMOTIONS[int(b)] if p >= min_strength else "neutral" for b, p in zip(best, peak,
                                                                                 strict=True)]
