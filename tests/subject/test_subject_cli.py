"""`facecast subject build` is honest with users: budgets that cannot train are refused,
budgets too small to make a face warn, an empty name is refused - before any work."""

from __future__ import annotations

import logging

import pytest

from backend.cli import main
from backend.commands.subject_cmd import MIN_USEFUL_STEPS, check_budget
from shared.errors import InputError


@pytest.mark.parametrize("args", [(0, None, None), (None, 0.0, None), (None, None, -1.0)])
def test_zero_budgets_are_refused(args: tuple) -> None:
    with pytest.raises(InputError, match="untrained subject"):
        check_budget(*args, device="cpu")


def test_small_budgets_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_budget(None, 2.0, None, device="cpu")  # the old "--minutes 2": 36 steps, fog
    assert "fog" in caplog.text and str(MIN_USEFUL_STEPS) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        steps, minutes, cpu = check_budget(3000, None, None, device="cpu")
    assert not caplog.text and steps == 3000 and minutes > 1e6 and cpu is None


def test_empty_name_is_refused_before_any_work(tmp_path, capsys) -> None:
    assert main(["subject", "build", str(tmp_path / "missing.mp4"), "--name", " ",
                 "--steps", "10"]) == 2
    assert "name is empty" in capsys.readouterr().err


@pytest.mark.slow
def test_build_options_reach_the_subject(tmp_path, capsys) -> None:
    """--mesh-warp and --refine-cameras (both opt-in) are what the built subject records."""
    import json

    from tests.conftest import data_path

    out = tmp_path / "s"
    assert main(["subject", "build", str(data_path("clips", "d12.mp4")), "--name", "s",
                 "--out", str(out), "--res", "64", "--max-frames", "30", "--steps", "3",
                 "--mesh-warp", "--refine-cameras", "--threads", "1",
                 "--consent", "test footage, no renders kept"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    printed = capsys.readouterr().out  # the coverage report comes before training ends
    assert printed.index("expression coverage of the footage (27 training frames") < \
        printed.index("subject 's' written")
    assert m["coverage"]["frames"] == 27 and set(m["coverage"]["emotions"]) >= {"happy"}
    assert m["model"]["mesh_warp"] is True and m["conditioning"]["mesh_warp"] is True
    assert m["training"]["config"]["refine_poses"] is True
    assert m["training"]["config"]["depth_rays"] > 0  # the depth prior is always on
