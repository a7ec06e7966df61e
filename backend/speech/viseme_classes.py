"""Phones -> viseme classes: which mouth shape each espeak-ng phone calls for.

Speech owns the phone set (espeak-ng English mnemonics; pocketsphinx's ARPAbet is mapped
onto it in :mod:`.phone_recognition`) and its grouping into viseme classes, because the
aligner and the recogniser need the classes (a vowel, a pause, a lip closure) without
any mouth poses. What each class *looks* like - its pose on the ARKit mouth channels and
its coarticulation dominance - is motion's business (``backend.motion.visemes``).
"""

from __future__ import annotations

import re

#: The viseme classes, in a fixed order (one-hot and probability columns use it; 0 = rest).
CLASSES: tuple[str, ...] = (
    "rest", "bilabial", "labiodental", "dental", "alveolar", "sibilant", "postalveolar",
    "velar", "glottal", "r", "w", "j", "open", "open_mid", "mid", "schwa", "front_close",
    "rounded_open", "rounded_mid", "rounded_close", "rhotic_vowel",
)

# espeak-ng English mnemonic (stress and variant digits stripped) -> viseme class
PHONES: dict[str, str] = {
    **dict.fromkeys(["_", "_:", "_!", "_^_", "||", "|", ""], "rest"),
    **dict.fromkeys(["p", "b", "m"], "bilabial"),
    **dict.fromkeys(["f", "v"], "labiodental"),
    **dict.fromkeys(["T", "D"], "dental"),
    **dict.fromkeys(["t", "d", "n", "l", "@L", "t#", "d#", "n-", "l/"], "alveolar"),
    **dict.fromkeys(["s", "z"], "sibilant"),
    **dict.fromkeys(["S", "Z", "tS", "dZ"], "postalveolar"),
    **dict.fromkeys(["k", "g", "N", "x"], "velar"),
    **dict.fromkeys(["h", "?"], "glottal"),
    **dict.fromkeys(["r", "r-", "*"], "r"),
    **dict.fromkeys(["w", "W", "w#"], "w"),
    **dict.fromkeys([";"], "glottal"),  # a palatalisation mark: takes its neighbours' shape
    "j": "j",
    **dict.fromkeys(["a", "A", "A:", "a#", "aa", "A@"], "open"),
    **dict.fromkeys(["V", "E", "e", "VR"], "open_mid"),
    **dict.fromkeys(["e@"], "mid"),
    **dict.fromkeys(["@", "@2", "@5", "a2"], "schwa"),
    **dict.fromkeys(["i:", "i", "I", "I#", "I2", "y", "IR"], "front_close"),
    **dict.fromkeys(["O:", "O", "0", "O@", "o@"], "rounded_open"),
    **dict.fromkeys(["o", "U@"], "rounded_mid"),
    **dict.fromkeys(["u:", "U", "u"], "rounded_close"),
    **dict.fromkeys(["3:", "3", "@r"], "rhotic_vowel"),
}

# diphthongs: two halves, each half a plain phone
DIPHTHONGS: dict[str, tuple[str, str]] = {
    "aI": ("a", "I"), "aU": ("a", "U"), "oU": ("o", "U"), "eI": ("E", "I"),
    "OI": ("O", "I"), "e@": ("E", "@"), "i@": ("i", "@"), "U@": ("U", "@"),
    "aI@": ("a", "@"), "aU@": ("a", "@"), "O@": ("O", "@"), "A@": ("A", "@"),
}


def normalise_phone(phone: str) -> str:
    """Strip espeak's stress/length marks and variant digits: "'aI2" -> "aI"."""
    p = phone.strip().lstrip("'%,=")
    if len(p) > 1 and p[-1].isdigit() and not re.fullmatch(r"[@3]\d?", p):
        p = p.rstrip("0123456789")
    return p


def viseme_class(phone: str) -> str:
    """The viseme class of one phone; unknown phones read as a neutral mid vowel."""
    p = normalise_phone(phone)
    if p.startswith("_"):
        return "rest"
    if p in DIPHTHONGS:  # alone, a diphthong reads as its first half
        p = DIPHTHONGS[p][0]
    return PHONES.get(p, PHONES.get(p.rstrip(":"), "mid"))
