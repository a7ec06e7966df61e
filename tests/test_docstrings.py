"""Module docstrings say what a module does and why, not what a bench last measured.

A measured number in a docstring goes stale the day the code or the machine changes,
and nothing checks it; the numbers live in docs/BENCHMARKS.md (and the bench that
prints them). Design constants and units stay: "16 kHz", "24 fps", "every 50 ms",
"within 15 % of the range". The patterns below are the shapes bench results take: a
decimal dB or percentage, an approximate speed or quality, a speed, a time per frame,
two numbers compared, a named score, a speed-up. Inline code (````...````) is exempt:
it quotes an example of output or a command, not a claim.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_NUM = r"\d[\d,]*(?:\.\d+)?"
#: (what the number is, its pattern)
MEASUREMENTS = [
    ("a decimal dB (a PSNR)", r"\b\d+\.\d+\s?dB\b"),
    ("a decimal percentage", r"\b\d+\.\d+\s?%"),
    ("an approximate speed or quality",
     rf"(?:~|≈|\babout\s)\s?{_NUM}(?:\s?[-–]\s?{_NUM})?\s?(?:fps|frames/s|dB|%|×)"),
    ("a speed", rf"\b{_NUM}\s?(?:frames/s|it/s|steps/s|frames per second)\b"),
    ("a time per frame or step",
     rf"\b{_NUM}\s?(?:ms|s)\s?(?:per|/)\s?(?:[\w^²]+\s)?(?:frame|step)\b"),
    ("two numbers compared", rf"\b{_NUM}\s?(?:dB|%|px|ms|s|fps)?\s+vs\.?\s+{_NUM}"),
    ("a score", r"\b(?:r|ρ|PSNR|SSIM|LPIPS|AUC|F1|accuracy|MAE|RMSE)\s?(?:=|≈|:|of)?\s?"
                r"-?\d*\.\d+"),
    ("a speed-up", rf"\b{_NUM}\s?[×x]\s(?:faster|slower|speed-?up)"),
]
_PATTERNS = [(what, re.compile(p)) for what, p in MEASUREMENTS]
_CODE = re.compile(r"``.*?``", re.S)


def measurements_in(doc: str) -> list[str]:
    """What in ``doc`` reads as a measured number: ``what: 'text'`` per hit."""
    text = _CODE.sub("", doc)
    return [f"{what}: {m.group(0)!r}" for what, pat in _PATTERNS for m in pat.finditer(text)]


def _modules() -> list[Path]:
    files = [p for root in ("backend", "blender_addon") for p in (REPO / root).rglob("*.py")]
    return sorted(files)


def test_module_docstrings_quote_no_measurements() -> None:
    bad = [f"{path.relative_to(REPO)}: {hit}" for path in _modules()
           for hit in measurements_in(ast.get_docstring(ast.parse(path.read_text())) or "")]
    assert not bad, ("move these numbers to docs/BENCHMARKS.md and say what and why:\n"
                     + "\n".join(bad))


@pytest.mark.parametrize("line", [
    "held-out frames render 1.6 dB better (23.9 vs 22.3)",
    "rendering collapsed from ~5 to 0.2 frames/s beside one process",
    "runs at ~5 ms per 256^2 frame on one core",
    "lip sync r 0.43 against the tracker",
    "reaches 99.38 % on LFW",
    "keeps ~60 % of the idle speed",
    "the kernel is 4x faster than the loop",
])
def test_a_quoted_measurement_is_caught(line: str) -> None:
    assert measurements_in(f"A module.\n\n{line}.\n")


@pytest.mark.parametrize("line", [
    "audio crosses the wire at 16 kHz; the scene plays at 24 fps",
    "called every 50 ms by a timer",
    "gap within 15 % of the speech opening range",
    "10 minutes at 60 fps never materialise at once",
    "e.g. ``render: 40/206 frames (19%), 2.1 frames/s, about 79 s left``",
    "a Gaussian window, sigma 1.5, as Wang et al.",
])
def test_a_design_constant_is_not(line: str) -> None:
    assert measurements_in(f"A module.\n\n{line}.\n") == []
