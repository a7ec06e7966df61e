"""One emotion table: every per-emotion table is derived from ``shared.emotion_profiles``.

Three proofs: the derived tables list exactly the table's emotions, in its order and with
its numbers; no source file spells a second per-emotion table; and a row appended to a
copy of the table reaches the vocabulary, the CLI parser, FACS, the mouth's delivery, the
blink rate and the expression judge with no other edit.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from backend.judges.expression import EMOTION_TO_FER, JUDGED_EMOTIONS
from backend.motion import blinks, delivery, facs
from shared.emotion_profiles import EMOTION_PROFILES, SIGNATURE_FEATURES
from shared.emotions import EMOTION_ALIASES, EMOTIONS

REPO = Path(__file__).resolve().parents[2]
NAMES = tuple(p.name for p in EMOTION_PROFILES)


def test_derived_tables_list_the_tables_emotions_in_order() -> None:
    assert EMOTIONS == NAMES
    for table in (facs.EMOTION_AUS, facs.FACS_SIGNATURES, delivery.DELIVERY,
                  blinks.RATE_FACTOR):
        assert tuple(table) == NAMES
    assert len(facs._PROTOTYPES) == len(delivery._TABLE) == len(blinks._FACTORS) == len(NAMES)
    # the judge knows every emotion FER2013 has a class for, in table order
    assert tuple(EMOTION_TO_FER) == tuple(p.name for p in EMOTION_PROFILES if p.fer_class)
    assert tuple(n for n in EMOTION_TO_FER if n != "neutral") == JUDGED_EMOTIONS
    assert list(EMOTION_ALIASES) == [a for p in EMOTION_PROFILES for a in p.aliases]
    for p in EMOTION_PROFILES:
        assert delivery.DELIVERY[p.name] == p.delivery
        assert blinks.RATE_FACTOR[p.name] == p.blink_rate
        assert tuple(facs.FACS_SIGNATURES[p.name][f] for f in SIGNATURE_FEATURES) == p.signature
        assert [(a.au, a.level) for a in facs.EMOTION_AUS[p.name]] == [s[:2] for s in p.aus]
        assert all(EMOTION_ALIASES[a] == p.name for a in p.aliases)
    assert facs.UNILATERAL_EMOTIONS == {"contempt": "right"}


def _literal_emotion_tables(path: Path) -> list[str]:
    """Dict literals keyed by five or more of the emotion names: a second table."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if len(keys & set(NAMES)) >= 5:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_second_emotion_table_in_the_source() -> None:
    files = [p for root in ("backend", "shared", "blender_addon")
             for p in (REPO / root).rglob("*.py") if p.name != "emotion_profiles.py"]
    found = [hit for p in files for hit in _literal_emotion_tables(p)]
    assert not found, f"per-emotion tables outside shared/emotion_profiles.py: {found}"


def test_the_checker_finds_a_planted_table(tmp_path: Path, monkeypatch) -> None:
    import tests.motion.test_emotion_profiles as here

    monkeypatch.setattr(here, "REPO", tmp_path)
    planted = tmp_path / "m.py"
    planted.write_text("X = {" + ", ".join(f"{n!r}: 1" for n in NAMES[:5]) + "}\n")
    assert _literal_emotion_tables(planted) == ["m.py:1"]


# Run in a fresh interpreter whose ``shared`` is the tmp copy with one row appended.
_PROBE = """
import json, sys
import numpy as np
from shared.emotions import EMOTIONS, canonical_emotion, parse_emotion_string, sample_emotion_track
from backend.motion import facs
from backend.motion import blinks, delivery
from backend.judges.expression import EMOTION_TO_FER, JUDGED_EMOTIONS
track = parse_emotion_string("0:bored@0.5,10:dull*0.5+happy*0.5")
w, i = sample_emotion_track(track, 0, 12)
proto = facs.emotion_prototype("bored")
print(json.dumps({
    "emotions": list(EMOTIONS), "alias": canonical_emotion("Dull"),
    "weights_shape": list(w.shape), "bored_w0": float(w[0, -1]),
    "aus": list(facs.EMOTION_AUS), "sig": facs.FACS_SIGNATURES["bored"],
    "proto_nonzero": [int(k) for k in np.flatnonzero(proto)],
    "delivery": list(delivery.DELIVERY["bored"]), "delivery_rows": len(delivery._TABLE),
    "slow": delivery.MAX_SLOWNESS_S,
    "blink": blinks.RATE_FACTOR["bored"],
    "blink_mult": float(blinks.rate_multiplier(w[:1], i[:1])[0]),
    "fer": EMOTION_TO_FER.get("bored"), "judged": list(JUDGED_EMOTIONS),
}))
"""

_ROW = """
EMOTION_PROFILES = (*EMOTION_PROFILES, EmotionProfile(
    "bored", aus=((43, "B"),), signature=(0, 0, 0, -1, 0), delivery=(0.6, 0.7, 0.08),
    blink_rate=0.5, aliases=("dull",), description="Lids heavy", fer_class=None))
"""


def test_one_appended_row_reaches_every_table(tmp_path: Path) -> None:
    copy = tmp_path / "shared"
    shutil.copytree(REPO / "shared", copy, ignore=shutil.ignore_patterns("__pycache__"))
    table = copy / "emotion_profiles.py"
    table.write_text(table.read_text(encoding="utf-8") + _ROW, encoding="utf-8")
    run = subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = "
                          f"[{str(tmp_path)!r}, {str(REPO)!r}]\n" + _PROBE],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    r = json.loads(run.stdout.strip().splitlines()[-1])
    assert r["emotions"] == [*NAMES, "bored"] and r["alias"] == "bored"
    assert r["weights_shape"] == [12, len(NAMES) + 1] and r["bored_w0"] == 1.0
    assert r["aus"][-1] == "bored"
    assert r["sig"] == dict(zip(SIGNATURE_FEATURES, (0, 0, 0, -1, 0), strict=True))
    blink_channels = sorted(facs.BLENDSHAPE_INDEX[n] for n in ("eyeBlinkLeft", "eyeBlinkRight"))
    assert r["proto_nonzero"] == blink_channels  # AU43 closes both lids
    assert r["delivery"] == [0.6, 0.7, 0.08] and r["delivery_rows"] == len(NAMES) + 1
    assert r["slow"] == np.float32(0.08)  # the slowest row now sets the filter's reach
    assert r["blink"] == 0.5 and r["blink_mult"] == 0.75  # 1 + 0.5 * (0.5 - 1)
    assert r["fer"] is None and r["judged"] == list(JUDGED_EMOTIONS)
