"""The emotion table: one row per emotion, the one place an emotion is defined.

Every per-emotion table elsewhere is derived from ``EMOTION_PROFILES`` in its order:
the vocabulary and its aliases (``shared.emotions``), the FACS prototypes and expected
feature signs (``backend.motion.facs``), the mouth's delivery (``backend.motion.delivery``), the
blink rate (``backend.motion.blinks``), the add-on's slider tooltips and the expression
judge's class (``backend.judges.expression``). Adding an emotion is one row here; the row
order is the column order of every ``emotion_weights[T, n]`` array, so rows are only ever
appended. (The learned motion model has one embedding row per emotion: a new row also
needs ``facecast motion train``.)

Why a data module with no imports: the add-on ships ``shared/`` and reads the names and
tooltips; the backend reads the numbers. Plain tuples keep it readable as a table and
free of numpy, so ``backend.motion.facs`` turns the AU tuples into its own types.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The coarse, measurable features a FACS signature gives a sign to, in the order of
#: :attr:`EmotionProfile.signature`.
SIGNATURE_FEATURES: tuple[str, ...] = (
    "brow_raise", "inner_brow_raise", "lip_corner_height", "eye_opening", "jaw_opening",
)


@dataclass(frozen=True)
class EmotionProfile:
    """Everything the product knows about one emotion.

    ``aus``: the EMFACS prototype as ``(AU, FACS letter A-E[, side])``.
    ``signature``: the expected sign of each of ``SIGNATURE_FEATURES`` against the
    neutral face (+1 up/open, -1 down/closed, 0 = FACS predicts no clear direction: not
    checked). ``delivery``: JALI-style (jaw activation, lip activation, slowness: extra
    smoothing sigma in seconds). ``blink_rate``: multiplier on the resting blink rate.
    ``aliases``: other spellings people type (only unambiguous words). ``description``:
    the add-on slider's tooltip. ``fer_class``: the FER2013 class the independent
    expression judge calls this face, or None where FER2013 has none.
    ``acted_prosody``: how an actor's voice carries it, as changes against a neutral
    reading (percent pitch level, pitch range, rate, volume, final-word pitch; emphasis,
    per-word pitch jitter in percent, a phrase-boundary pause in ms), after Murray &
    Arnott (1993, Table 1) and, for surprise, Schröder (2001); the acted speech the
    voice's emotion classifier learns from (``backend.motion.acted_speech``). None where
    neither source gives a rule.
    """

    name: str
    aus: tuple[tuple, ...]
    signature: tuple[int, int, int, int, int]
    delivery: tuple[float, float, float]
    blink_rate: float
    aliases: tuple[str, ...]
    description: str
    fer_class: str | None
    acted_prosody: dict | None = None


# The eight MEAD categories. Prototypes after Ekman & Friesen; Ekman, Friesen & Hager
# (2002): each the commonest full-face variant, the letters set how strongly an AU shows.
# Signatures name the AUs behind each non-zero sign. Aliases: the noun forms (as in
# Ekman's and FER's label sets), MEAD's "surprise"/"disgust"-style folder names, common
# synonyms ("mad" or "upset" could mean several categories, so they stay unknown).
# Delivery: angry and surprised widen articulation, sad narrows and slows it, contempt
# and disgust tighten the lips. Blinks: arousal and anxiety raise the rate (fear, anger),
# surprise suppresses it (eyes held wide).
EMOTION_PROFILES: tuple[EmotionProfile, ...] = (
    EmotionProfile(
        "neutral", aus=(), signature=(0, 0, 0, 0, 0),
        delivery=(1.0, 1.0, 0.0), blink_rate=1.0, aliases=("calm", "none"),
        description="Resting face; weight of no particular emotion", fer_class="neutral",
        # the neutral reading every rule is measured against
        acted_prosody=dict(pitch=0, range=0, rate=0, volume=0)),
    EmotionProfile(
        # Duchenne smile: cheeks up (AU6) and lip corners up (AU12). AU12 lifts the
        # corners; AU6 pushes the cheeks up and narrows the eyes.
        "happy", aus=((6, "C"), (12, "D")), signature=(0, 0, +1, -1, 0),
        delivery=(1.05, 1.0, 0.0), blink_rate=1.1, aliases=("happiness", "joy", "joyful"),
        description="Smile: lip corners and cheeks raised (AU6+AU12)", fer_class="happy",
        # pitch "much higher", range "much wider", louder; "smooth, upward inflections"
        acted_prosody=dict(pitch=30, range=80, rate=10, volume=30, final=25)),
    EmotionProfile(
        # Inner brows up and knit (AU1+AU4), lip corners down (AU15).
        "sad", aus=((1, "D"), (4, "B"), (15, "C")), signature=(0, +1, -1, 0, 0),
        delivery=(0.7, 0.75, 0.045), blink_rate=0.85, aliases=("sadness", "unhappy"),
        description="Inner brows raised, lip corners lowered (AU1+AU4+AU15)",
        fer_class="sad",
        # "slightly slower", "slightly lower", "slightly narrower", quieter; "downward
        # inflections", slurred
        acted_prosody=dict(pitch=-12, range=-50, rate=-25, volume=-40, final=-15, pause_ms=250)),
    EmotionProfile(
        # Brows down (AU4, inner part too), glare (AU5+AU7: eye opening ambiguous), lips
        # tightened (AU23).
        "angry", aus=((4, "D"), (5, "B"), (7, "C"), (23, "C")), signature=(-1, -1, 0, 0, 0),
        delivery=(1.3, 1.3, 0.0), blink_rate=1.25, aliases=("anger",),
        description="Brows lowered, lids tightened, lips pressed (AU4+AU5+AU7+AU23)",
        fer_class="angry",
        # "slightly faster", "very much higher", "much wider", louder; "abrupt on stressed
        # syllables", tense
        acted_prosody=dict(pitch=25, range=60, rate=12, volume=70, final=-20, emphasis=True)),
    EmotionProfile(
        # Whole brow up (AU1+AU2), upper lids up (AU5), jaw dropped (AU26).
        "surprised", aus=((1, "D"), (2, "D"), (5, "C"), (26, "D")),
        signature=(+1, +1, 0, +1, +1),
        delivery=(1.35, 1.15, 0.0), blink_rate=0.55, aliases=("surprise",),
        description="Brows raised, eyes wide, jaw dropped (AU1+AU2+AU5+AU26)",
        fer_class="surprise",
        # Schröder 2001: high pitch, wide range, rising contour
        acted_prosody=dict(pitch=40, range=100, rate=5, volume=25, final=45)),
    EmotionProfile(
        # Brows up and knit (AU1+AU2 outweigh AU4), lids wide and tense (AU5+AU7), lips
        # stretched (AU20), jaw dropped (AU26).
        "fearful",
        aus=((1, "D"), (2, "C"), (4, "B"), (5, "D"), (7, "B"), (20, "C"), (26, "B")),
        signature=(+1, +1, 0, +1, +1),
        delivery=(1.1, 1.1, 0.0), blink_rate=1.4, aliases=("fear", "afraid", "scared"),
        description="Brows raised and drawn together, lips stretched "
                    "(AU1+AU2+AU4+AU5+AU20)",
        fer_class="fear",
        # "much faster", "very much higher", "much wider", intensity normal; irregular voicing
        acted_prosody=dict(pitch=55, range=20, rate=35, volume=0, jitter=12)),
    EmotionProfile(
        # Nose wrinkled (AU9), upper lip up (AU10), corners and lower lip down
        # (AU15+AU16); AU15 pulls the corners down (AU10 lifts the lip, not the corners).
        "disgusted", aus=((9, "D"), (10, "C"), (15, "B"), (16, "B")),
        signature=(0, 0, -1, 0, 0),
        delivery=(0.95, 1.15, 0.0), blink_rate=1.0, aliases=("disgust",),
        description="Nose wrinkled, upper lip raised (AU9+AU10)", fer_class="disgust",
        # "very much slower", "very much lower", "slightly wider", quieter; "wide, downward
        # terminal inflections"
        acted_prosody=dict(pitch=-25, range=20, rate=-30, volume=-20, final=-30, pause_ms=150)),
    EmotionProfile(
        # One-sided lip corner tightening and pull (AU12+AU14 on the right only); AU12
        # (one side) lifts the lip-corner average.
        "contempt", aus=((12, "C", "right"), (14, "C", "right")),
        signature=(0, 0, +1, 0, 0),
        delivery=(0.85, 0.85, 0.02), blink_rate=0.9, aliases=("contemptuous", "disdain"),
        description="One lip corner tightened and raised (AU14, one side)", fer_class=None),
)
