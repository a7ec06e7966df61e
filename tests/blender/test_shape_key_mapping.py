"""Shape-key name matching across naming styles, with overrides and ambiguity."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from shared.blendshapes import ARKIT_BLENDSHAPES
from shared.errors import InputError
from shared.shape_key_mapping import arkit_match, match_shape_keys


def _split(arkit: str) -> tuple[list[str], str | None]:
    """ARKit name -> (base words, side), written independently of the module under test."""
    words = re.findall(r"[A-Z]?[a-z]+", arkit)
    if words[-1] in ("Left", "Right"):
        return words[:-1], words[-1]
    return words, None


def _style(join: Callable[[list[str]], str], side: Callable[[str, str], str]):
    def make(arkit: str) -> str:
        words, s = _split(arkit)
        base = join(words)
        return base if s is None else side(base, s)
    return make


def _camel(w: list[str]) -> str:
    return w[0].lower() + "".join(x.capitalize() for x in w[1:])


def _pascal(w: list[str]) -> str:
    return "".join(x.capitalize() for x in w)


STYLES = {
    "camel": _style(_camel, lambda b, s: b + s),
    "pascal": _style(_pascal, lambda b, s: b + s),
    "snake": _style(lambda w: "_".join(x.lower() for x in w), lambda b, s: f"{b}_{s.lower()}"),
    "upper": _style(lambda w: "_".join(x.upper() for x in w), lambda b, s: f"{b}_{s.upper()}"),
    "kebab": _style(lambda w: "-".join(x.lower() for x in w), lambda b, s: f"{b}-{s.lower()}"),
    "title_space": _style(lambda w: " ".join(x.capitalize() for x in w),
                          lambda b, s: f"{b} {s}"),
    "side_underscore_L": _style(_camel, lambda b, s: f"{b}_{s[0]}"),
    "side_fused_L": _style(_camel, lambda b, s: f"{b}{s[0]}"),
    "side_dot_L": _style(_camel, lambda b, s: f"{b}.{s[0]}"),
    "side_underscore_left": _style(_camel, lambda b, s: f"{b}_{s}"),
    "side_lower_l": _style(_camel, lambda b, s: f"{b}_{s[0].lower()}"),
    "side_first": _style(_camel, lambda b, s: f"{s}_{b}"),
    "all_lower": _style(lambda w: "".join(x.lower() for x in w),
                        lambda b, s: b + s.lower()),
    "prefix_blendshape": lambda a: f"blendShape1.{a}",
    "prefix_face": lambda a: f"Face.{a}",
    "prefix_arkit": lambda a: f"ARKit_{a}",
    "prefix_bs": lambda a: f"bs_{a}",
    "prefix_face_dot_L": lambda a: "Face." + STYLES["side_dot_L"](a),
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_maps_all_52(style):
    make = STYLES[style]
    names = ["Basis"] + [make(a) for a in ARKIT_BLENDSHAPES] + ["teeth_hide"]
    assert len(set(names)) == len(names)
    result = match_shape_keys(names)
    assert result.mapping == {a: make(a) for a in ARKIT_BLENDSHAPES}, result.report()
    assert result.complete and not result.missing and not result.ambiguous
    assert result.unused == ["teeth_hide"]
    assert result.report().startswith("52/52 ARKit shapes mapped")


def test_style_examples():
    assert STYLES["snake"]("mouthSmileLeft") == "mouth_smile_left"
    assert STYLES["title_space"]("jawOpen") == "Jaw Open"
    assert STYLES["side_first"]("mouthSmileLeft") == "Left_mouthSmile"
    assert STYLES["side_fused_L"]("eyeLookInRight") == "eyeLookInR"


def test_basis_is_never_a_target():
    assert arkit_match("Basis") is None
    result = match_shape_keys(["Basis", "jawOpen"])
    assert "Basis" not in result.mapping.values() and "Basis" not in result.unused


def test_missing_keys_reported():
    names = [a for a in ARKIT_BLENDSHAPES if a not in ("tongueOut", "cheekPuff")]
    result = match_shape_keys(names)
    assert result.missing == ["cheekPuff", "tongueOut"]
    assert not result.complete
    report = result.report()
    assert "50/52 ARKit shapes mapped" in report and "missing: cheekPuff, tongueOut" in report
    assert result.key_columns()["jawOpen"] == ARKIT_BLENDSHAPES.index("jawOpen")


def test_overrides_win_and_are_reported():
    names = ["jawOpen", "Mouth_Open_Custom", "mouthSmile_L", "smile_right_custom"]
    result = match_shape_keys(names, {"jawOpen": "Mouth_Open_Custom",
                                      "mouthSmileRight": "smile_right_custom",
                                      "mouthsmileleft": ""})
    assert result.mapping == {"jawOpen": "Mouth_Open_Custom",
                              "mouthSmileRight": "smile_right_custom"}
    assert "mouthSmileLeft" not in result.missing  # deliberately unmapped
    assert result.unused == ["jawOpen", "mouthSmile_L"]
    assert "overrides applied: jawOpen -> Mouth_Open_Custom" in result.report()
    assert "mouthSmileLeft -> (none)" in result.report()


def test_override_steals_key_from_automatic_match():
    result = match_shape_keys(["jawOpen"], {"mouthClose": "jawOpen"})
    assert result.mapping == {"mouthClose": "jawOpen"}
    assert "jawOpen" in result.missing


@pytest.mark.parametrize(("overrides", "problem", "fix"), [
    ({"jawOpen": "Jaw_Openn"}, '"Jaw_Openn"', 'did you mean "jaw_open"'),
    ({"jawOpne": "jaw_open"}, '"jawOpne"', 'did you mean "jawOpen"'),
    ({"jaw_open": "jawOpen"}, '"jaw_open"', "reversed"),
    ({"jawOpen": "Basis"}, "reference key", "Basis"),
    ({"jawOpen": "jaw_open", "mouthClose": "jaw_open"}, "both drive", "own shape key"),
])
def test_bad_overrides(overrides, problem, fix):
    with pytest.raises(InputError) as info:
        match_shape_keys(["Basis", "jaw_open", "mouth_close"], overrides)
    assert problem in info.value.problem and fix in info.value.fix


def test_ambiguity_is_reported_not_guessed():
    result = match_shape_keys(["JAW_OPEN", "jaw_open", "Face.mouthClose", "Head.mouthClose"])
    assert "jawOpen" not in result.mapping and "mouthClose" not in result.mapping
    assert result.ambiguous == {"jawOpen": ["JAW_OPEN", "jaw_open"],
                                "mouthClose": ["Face.mouthClose", "Head.mouthClose"]}
    assert "ambiguous (add an override): jawOpen <- JAW_OPEN | jaw_open" in result.report()
    fixed = match_shape_keys(["JAW_OPEN", "jaw_open"], {"jawOpen": "jaw_open"})
    assert fixed.mapping == {"jawOpen": "jaw_open"} and fixed.unused == ["JAW_OPEN"]


def test_exact_then_unprefixed_preferred():
    result = match_shape_keys(["JawOpen", "jawOpen", "Face.mouthClose", "mouth_close"])
    assert result.mapping == {"jawOpen": "jawOpen", "mouthClose": "mouth_close"}
    assert result.unused == ["JawOpen", "Face.mouthClose"]


def test_no_key_serves_two_names():
    names = ["mouth_L", "mouthLeft", "mouthSmile_L", "jaw_L", "Jaw Left", "L", "left"]
    result = match_shape_keys(names)
    assert len(set(result.mapping.values())) == len(result.mapping)
    assert result.mapping["mouthSmileLeft"] == "mouthSmile_L"
    assert result.mapping["mouthLeft"] == "mouthLeft"  # exact name beats mouth_L
    assert result.ambiguous["jawLeft"] == ["jaw_L", "Jaw Left"]
    assert arkit_match("mouthSmile") is None  # no side: not a guess at either side
