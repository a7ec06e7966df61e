"""The README cannot rot: every command block of its CLI section runs as written (in a
small-input mode), and every `facecast` command anywhere in it parses with today's CLI.

Small-input mode, the only changes made to the README's text before running it:
``.venv/bin/facecast`` becomes this interpreter's ``-m backend.cli`` (the same entry
point), ``facecast_demo/speech.wav`` is a 0.5 s spoken line instead of the demo's, and
``--size 256`` renders at 128² (the smallest size whose frames still carry a watermark
``verify`` finds). Each substitution must still match the README, so a
renamed command or flag fails here instead of being skipped.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CLI_SECTION = "## From the command line"
SMALL_SIZE = {"--size 256": "--size 128"}
CLI = f"{shlex.quote(sys.executable)} -m backend.cli"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end >= 0 else None]


def _blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[str]:
    """Each command of a block: continuation lines joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    return [line.split(" #")[0].strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_every_facecast_command_in_the_readme_parses() -> None:
    """Every command is written runnable after the install (`.venv/bin/facecast`, never
    a bare `facecast`), and its subcommand and flags exist today."""
    from backend.cli import build_parser

    text = README.read_text()
    assert len(text.splitlines()) <= 250, "the README is for users: keep it short"
    commands = [c for b in _blocks(text) for c in _commands(b)]
    bare = [c for c in commands if re.match(r"^(sudo )?facecast\b", c)]
    assert not bare, f"bare `facecast` does not exist after the install: {bare}"
    facecast = [c for c in commands if c.startswith(".venv/bin/facecast ")]
    assert len(facecast) >= 8, facecast
    for command in facecast:
        args = shlex.split(command)[1:]
        args = [a for a in args if a != "|"][: args.index("|") if "|" in args else None]
        try:
            build_parser().parse_args(args)
        except SystemExit as exc:
            pytest.fail(f"README command no longer parses ({exc.code}): {command}")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder as the user has it after `facecast demo`: facecast_demo/speech.wav."""
    import soundfile

    from backend.audio import load_audio
    from backend.speech import synthesize

    speech = synthesize("Hello there.")
    audio = load_audio((speech.samples, speech.sample_rate), sample_rate=16000)
    (tmp_path / "facecast_demo").mkdir()
    soundfile.write(tmp_path / "facecast_demo" / "speech.wav",
                    audio.samples[: 8000], 16000, subtype="PCM_16")
    return tmp_path


def test_the_cli_section_runs_as_written(workdir: Path) -> None:
    section = _section(README.read_text(), CLI_SECTION)
    blocks = _blocks(section)
    assert len(blocks) >= 3, "the CLI section shows its commands in bash blocks"
    for old in (*SMALL_SIZE, "facecast_demo/speech.wav"):
        assert old in section, f"small-input mode expects {old!r} in the CLI section"
    for block in blocks:
        script = block.replace(".venv/bin/facecast", CLI)
        for old, new in SMALL_SIZE.items():
            script = script.replace(old, new)
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir,
                             capture_output=True, text=True, timeout=600,
                             env={**_env(), "PYTHONPATH": str(REPO)})
        assert run.returncode == 0, f"README block failed:\n{block}\n{run.stderr[-3000:]}"
    assert (workdir / "anim.npz").is_file() and (workdir / "take2.json").is_file()
    assert sorted(p.name for p in (workdir / "frames").glob("0*.png"))[0] == "000001.png"


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
