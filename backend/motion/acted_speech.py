"""Acted emotional speech the project can generate: espeak-ng lines spoken with the
prosody rules of the emotional speech-synthesis literature, labelled by construction.

Why: no emotion-labelled recording exists in this project, and none may be downloaded. The
rules follow the directions of Murray & Arnott (1993, "Toward the simulation of emotion in
synthetic speech", Table 1: per emotion, speech rate, pitch average, pitch range,
intensity, pitch changes) and the review of Schröder (2001, "Emotional speech synthesis: a
review"), which adds surprise and gives rule magnitudes of tens of per cent to a doubling
of the range. The magnitudes below are our choice inside those ranges; each line draws its
own strength around them (``STRENGTH_SPREAD``), and every line, neutral included, also gets
a random baseline (rate, pitch, range, loudness), so "neutral" is a cloud, not a point.

espeak-ng realises them through SSML: ``<prosody pitch range rate volume>`` for the global
settings, a nested ``<prosody pitch>`` on the last word for the terminal inflection (rise or
fall), ``<emphasis>`` on content words for abrupt pitch changes on stressed syllables,
per-word pitch jitter for irregular voicing and ``<break>`` for pauses. Voice quality
(breathy, tense, creaky) is not controllable this way and is left out.

What this is not: synthetic acted prosody is not real emotional speech. Human speakers
signal emotion with voice quality, timing and words as much as with these global settings,
and a classifier trained here has only ever heard espeak. Contempt has no rule in either
source and is not generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.audio import SAMPLE_RATE
from shared.emotion_profiles import EMOTION_PROFILES

#: The emotions generated (contempt: no literature rule), in classifier order.
ACTED_EMOTIONS = ("neutral", "happy", "sad", "angry", "fearful", "surprised", "disgusted")
#: Each line's rule strength is the rule times uniform(1 - s, 1 + s).
STRENGTH_SPREAD = 0.35


@dataclass(frozen=True)
class ProsodyRule:
    """Changes relative to the voice's neutral delivery, in per cent (SSML units)."""

    pitch: float  # pitch level
    range: float  # pitch range
    rate: float  # speaking rate
    volume: float  # loudness
    final: float = 0.0  # pitch of the last word re the rest: + rise, - fall
    emphasis: bool = False  # abrupt pitch changes on stressed content words
    jitter: float = 0.0  # per-word random pitch (irregular voicing)
    pause_ms: float = 0.0  # a pause at the phrase boundary


#: Each acted emotion's prosody rule, from its row of ``shared.emotion_profiles``.
RULES: dict[str, ProsodyRule] = {p.name: ProsodyRule(**p.acted_prosody)
                                 for p in EMOTION_PROFILES if p.acted_prosody is not None}

#: Voices heard in training and the held-out ones: accents and variants both differ.
TRAIN_VOICES = ("en-us+m1", "en-us+f1", "en+m2", "en+f2", "en-gb-x-rp+m3",
                "en-gb-x-rp+f3", "en-029+m4", "en-029+klatt")
TEST_VOICES = ("en-gb-scotland+m5", "en-gb-x-gbclan+f4", "en-us-nyc+m7",
               "en-gb-x-gbcwmd+f5")

SENTENCES = (
    "The train leaves the station at noon today.",
    "I put the letters on the kitchen table, as you asked.",
    "We walked along the river until the sun went down.",
    "She said the meeting was moved to Thursday morning.",
    "There is a new bakery on the corner of our street.",
    "He painted the fence blue, and then the gate as well.",
    "The children played in the garden all afternoon.",
    "My brother bought a car from a man in the village.",
    "They opened the window, and the room filled with air.",
    "The results will be posted on the board tomorrow.",
    "You can find the keys in the drawer by the door.",
    "Our neighbours are moving to a house by the sea.",
    "The film started late because the projector broke.",
    "I read the whole book on the flight back home.",
    "The dog waited by the gate for the postman.",
    "We need to buy milk, bread and some apples.",
    "The phone rang twice, and then it stopped.",
    "He told me the story about his first job.",
    "The garden looks different after all that rain.",
    "She found an old photograph inside the box.",
    "The bus was full, so we took a taxi instead.",
    "They built a bridge over the little stream.",
    "I saw your sister at the market this morning.",
    "The doctor will see you in about ten minutes.",
    "The lights in the hall went out at midnight.",
    "We played cards by the fire until late.",
    "The package arrived a week after the party.",
    "My father used to work in that old factory.",
    "The teacher wrote the answer on the board.",
    "A strange man was standing outside the shop.",
    "The lake freezes over every winter here.",
    "He left his coat on the chair in the office.",
    "The concert was cancelled because of the storm.",
    "I have never seen so many birds in one place.",
    "Your results came back from the lab today.",
    "The soup has been on the stove all morning.",
    "She moved the piano into the other room.",
    "They found the missing cat under the bed.",
    "The road to the farm was closed for a week.",
    "We will meet at the cafe after work.",
    "The old clock in the tower stopped at three.",
    "He forgot to water the plants before he left.",
    "The boat drifted slowly towards the island.",
    "My grandmother made this blanket by hand.",
    "The shop on the high street sells fresh fish.",
    "I wrote down the number, but I lost the paper.",
    "The printer in the office is broken again.",
    "We could hear the music from the next house.",
    "The price of the tickets went up last month.",
    "Someone left the gate open during the night.",
    "The new manager starts work on Monday.",
    "The apples in the basket came from our tree.",
    "She called her mother from the hotel lobby.",
    "The water in the pool was colder than usual.",
    "They painted the kitchen a bright yellow.",
    "He sold his bicycle to a student from town.",
    "The plane landed twenty minutes early.",
    "Every morning he walks the dog to the park.",
    "The museum is closed on the first of May.",
    "We moved the table closer to the window.",
)
#: The last sentences are held out: a test line was never spoken in training.
N_TEST_SENTENCES = 16


def split_sentences() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train, test) sentences."""
    return SENTENCES[:-N_TEST_SENTENCES], SENTENCES[-N_TEST_SENTENCES:]


def _pct(x: float) -> str:
    return f"{x:+.0f}%"


CONTENT_MIN_LETTERS = 5  # words this long are treated as stressed content words


def acted_ssml(text: str, emotion: str, rng: np.random.Generator) -> str:
    """The SSML for one line spoken with ``emotion``'s rule at a random strength, over a
    random neutral baseline."""
    rule = RULES[emotion]
    k = float(rng.uniform(1.0 - STRENGTH_SPREAD, 1.0 + STRENGTH_SPREAD))
    pitch = rule.pitch * k + rng.normal(0.0, 6.0)
    span = rule.range * k + rng.normal(0.0, 12.0)
    rate = rule.rate * k + rng.normal(0.0, 7.0)
    volume = rule.volume * k + rng.normal(0.0, 8.0)
    words = text.split()
    out = []
    brk = len(words) // 2 if rule.pause_ms > 0 else -1
    for i, w in enumerate(words):
        piece = w
        if rule.emphasis and sum(c.isalpha() for c in w) >= CONTENT_MIN_LETTERS:
            piece = f"<emphasis>{piece}</emphasis>"
        shift = rule.jitter * k * float(rng.normal()) if rule.jitter else 0.0
        if i == len(words) - 1 and rule.final:
            shift += rule.final * k
        if abs(shift) >= 1.0:
            piece = f'<prosody pitch="{_pct(shift)}">{piece}</prosody>'
        out.append(piece)
        if i == brk:
            out.append(f'<break time="{rule.pause_ms * k:.0f}ms"/>')
    body = " ".join(out)
    return (f'<speak><prosody pitch="{_pct(pitch)}" range="{_pct(span)}" '
            f'rate="{_pct(rate)}" volume="{_pct(volume)}">{body}</prosody></speak>')


@dataclass(frozen=True)
class ActedRecording:
    """One voice speaking several lines, each with its own emotion, with pauses between.

    ``spans``: (start s, end s, emotion) per line; the samples are at SAMPLE_RATE."""

    samples: np.ndarray
    voice: str
    spans: tuple[tuple[float, float, str], ...]

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def acted_recording(rng: np.random.Generator, voice: str, sentences: tuple[str, ...],
                    n_lines: int = 4, emotions: tuple[str, ...] = ACTED_EMOTIONS,
                    same_emotion: bool = False) -> ActedRecording:
    """``n_lines`` random lines of ``sentences`` in ``voice``; each line's emotion drawn
    from ``emotions`` (one emotion for the whole recording if ``same_emotion``). The whole
    recording gets one random gain (recording level is arbitrary) and a faint noise floor."""
    from backend.audio.loading import resample
    from backend.speech.espeak import synthesize

    one = str(rng.choice(emotions))
    pieces = [np.zeros(int(rng.uniform(0.2, 0.5) * SAMPLE_RATE), np.float32)]
    t = len(pieces[0]) / SAMPLE_RATE
    spans = []
    for _ in range(n_lines):
        emotion = one if same_emotion else str(rng.choice(emotions))
        text = str(rng.choice(sentences))
        clip = synthesize(acted_ssml(text, emotion, rng), voice, 160, ssml=True)
        pcm = resample(clip.samples, clip.sample_rate, SAMPLE_RATE)
        spans.append((t, t + len(pcm) / SAMPLE_RATE, emotion))
        gap = np.zeros(int(rng.uniform(0.25, 0.7) * SAMPLE_RATE), np.float32)
        pieces += [pcm.astype(np.float32), gap]
        t += (len(pcm) + len(gap)) / SAMPLE_RATE
    samples = np.concatenate(pieces)
    samples *= np.float32(10.0 ** (rng.uniform(-12.0, 4.0) / 20.0))
    samples += rng.normal(0.0, 10.0 ** (-65 / 20.0), samples.shape).astype(np.float32)
    return ActedRecording(np.clip(samples, -1.0, 1.0).astype(np.float32), voice,
                          tuple(spans))
