"""Every CLI failure a user can cause is one line `facecast: error: … — what to do`, with
no traceback and no temporary file left behind; outputs follow the umask."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.atomic_file import write_atomic
from backend.server.launcher import BackendProcess
from shared.blendshapes import ARKIT_BLENDSHAPES

REPO = Path(__file__).resolve().parents[2]


def facecast(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def assert_one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("facecast: error:")]
    assert len(lines) == 1 and " — " in lines[0], out.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_in_use(key_file) -> None:
    port = _free_port()
    with BackendProcess(key_file=key_file, address=f"tcp://127.0.0.1:{port}"):
        out = facecast("serve", "--address", f"tcp://127.0.0.1:{port}", "--key-file",
                       str(key_file))
    assert_one_line_error(out, "already in use", "port 0 picks a free one")


@pytest.mark.parametrize("address, needle", [
    ("foo", "is not a ZeroMQ endpoint"),
    ("tcp://127.0.0.1:99999", "port 99999"),
    ("tcp://127.0.0.1:http", "is not a number"),
    ("udp://127.0.0.1:5557", "does not speak"),
    ("tcp://127.0.0.1", "no host:port"),
])
def test_bad_addresses(key_file, address, needle) -> None:
    assert_one_line_error(facecast("serve", "--address", address, "--key-file",
                                   str(key_file)), needle)
    assert_one_line_error(facecast("info", "--address", address, "--key-file",
                                   str(key_file), "--timeout", "1"), needle)


def test_empty_motion_file(tmp_path) -> None:
    motion = tmp_path / "anim.npz"
    motion.write_bytes(b"")
    camera = tmp_path / "cam.json"
    camera.write_text(json.dumps(_camera(32)))
    out = facecast("render", "default", "--motion", str(motion), "--camera", str(camera),
                   "-o", str(tmp_path / "frames"))
    assert_one_line_error(out, "anim.npz is not a readable .npz")  # (.npz/.json)


# -- a full disk and a read-only folder, on a tmpfs in a private mount namespace --------

def _in_namespace(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", script],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.fixture(scope="module")
def namespaces() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (util-linux)")
    probe = _in_namespace("mount -t tmpfs -o size=64k tmpfs /mnt && echo ok")
    if "ok" not in probe.stdout:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()}")


def _cli(*args: str) -> str:
    return " ".join(shlex.quote(a) for a in (sys.executable, "-m", "backend.cli", *args))


def _camera(size: int) -> dict:
    from backend.subject.framing import front_camera
    from backend.subject.store import read_manifest, resolve_subject

    return front_camera(read_manifest(resolve_subject("default")), size)


def test_disk_full_during_render(tmp_path, namespaces) -> None:
    """The output tmpfs fills after a few frames: one line saying so, the finished
    frames kept whole, no temp file left."""
    frames = 30
    blend = np.zeros((frames, 52), np.float32)
    blend[:, ARKIT_BLENDSHAPES.index("jawOpen")] = np.linspace(0, 0.5, frames)
    motion = tmp_path / "anim.npz"
    np.savez(motion, blendshapes=blend)
    camera = tmp_path / "cam.json"
    camera.write_text(json.dumps(_camera(96)))
    out_dir = tmp_path / "full"
    out_dir.mkdir()
    cmd = _cli("render", "default", "--motion", str(motion), "--camera", str(camera),
               "-o", str(out_dir / "frames"))
    run = _in_namespace(f"mount -t tmpfs -o size=120k tmpfs {out_dir} && {cmd}; "
                        f"echo rc=$?; ls -a {out_dir}/frames")
    out = subprocess.CompletedProcess(run.args, int(run.stdout.split("rc=")[1].split()[0]),
                                      run.stdout, run.stderr)
    assert_one_line_error(out, "no space left on the device while writing", "free some space")
    listing = run.stdout.split("rc=")[1].split()[1:]
    assert not [n for n in listing if n.startswith(".tmp-")], listing
    pngs = [n for n in listing if n.endswith(".png")]
    assert 0 < len(pngs) < 2 * frames, listing  # some frames finished before it filled


def test_read_only_output_folder(tmp_path, namespaces) -> None:
    audio = tmp_path / "line.wav"
    import soundfile

    soundfile.write(audio, (0.2 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    ro = tmp_path / "ro"
    ro.mkdir()
    cmd = _cli("animate", str(audio), "-o", str(ro / "anim.npz"))
    run = _in_namespace(f"mount -t tmpfs -o ro,size=64k tmpfs {ro} && {cmd}; echo rc=$?")
    out = subprocess.CompletedProcess(run.args, int(run.stdout.split("rc=")[1].split()[0]),
                                      run.stdout, run.stderr)
    assert_one_line_error(out, "read-only file system", "write to another folder")


# -- the atomic writer ---------------------------------------------------------------------

def test_outputs_follow_the_umask(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        a = write_atomic(tmp_path / "a.npz", lambda f: f.write(b"x"))
        os.umask(0o077)
        b = write_atomic(tmp_path / "b.npz", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(a.stat().st_mode) == 0o644
    assert stat.S_IMODE(b.stat().st_mode) == 0o600


def test_temp_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path) -> None:
    """kill -9 mid-write leaves a temp file; the next write into the folder removes it
    (it names a dead pid), and keeps a live writer's and the user's own files."""
    code = ("import os, sys; sys.path.insert(0, sys.argv[2]);"
            "from backend.atomic_file import write_atomic;"
            "write_atomic(sys.argv[1], lambda f: (f.write(b'half'), f.flush(),"
            "os.kill(os.getpid(), 9)))")
    folder = tmp_path / "frames"
    subprocess.run([sys.executable, "-c", code, str(folder / "000001.png"), str(REPO)],
                   timeout=60)
    left = [p.name for p in folder.iterdir()]
    assert len(left) == 1 and left[0].startswith(".tmp-"), left
    live = folder / f".tmp-{os.getpid()}-{'a' * 12}.png"
    live.write_bytes(b"in progress")
    mine = folder / ".tmp-notes.txt"
    mine.write_bytes(b"the user's")
    write_atomic(folder / "000002.png", lambda f: f.write(b"png"))
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["000002.png", live.name, mine.name])


# -- every subcommand's arguments: one line naming the user's thing, nothing left behind ----

LONG_TEXT = "la " * 400  # 1200 characters


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder of things a user may pass: good, empty, wrong-type and missing files."""
    import soundfile

    root = tmp_path_factory.mktemp("inputs")
    tone = (0.2 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    soundfile.write(root / "line.wav", tone, 16000)
    soundfile.write(root / "short.wav", tone[:1600], 16000)  # 0.1 s
    soundfile.write(root / "empty.wav", np.zeros(0, np.float32), 16000)
    soundfile.write(root / "long.wav", np.tile(tone, 121), 16000, subtype="PCM_16")
    (root / "text.wav").write_text("not a recording")
    (root / "notes.txt").write_text("a file, not a folder")
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "folder").mkdir()
    np.savez(root / "anim.npz", blendshapes=np.zeros((2, 52), np.float32))
    (root / "anim_empty.npz").write_bytes(b"")
    from tests.subject.test_subject_build import _write_video

    _write_video(root / "clip.mp4", np.full((4, 32, 32, 3), 128, np.uint8))
    return root


#: (arguments, what the one error line must say). {in} is the inputs folder, {out} a
#: path in an empty folder that must stay empty.
CASES = [
    # demo
    ("demo -o {out} --subject nobody", ["unknown subject 'nobody'"]),
    ("demo -o {out} --audio {in}/text.wav", ["text.wav"]),
    ("demo -o {out} --audio {in}/empty.wav", ["empty.wav is empty"]),
    ("demo -o {out} --audio {in}/nosuch.wav", ["nosuch.wav"]),
    ("demo -o {out} --audio {in}/folder", ["folder"]),
    ("demo -o {out} --audio {in}/long.wav", ["long.wav is 121 s"]),
    ("demo -o {out} --emotion 0:angyr", ["angyr", "angry"]),
    ("demo -o {out} --emotion 0:happy,0:sad", ["frame 0"]),
    ("demo -o {out} --emotion ''", ["emotion track is empty"]),
    ("demo -o {out} --fps 0", ["--fps 0"]),
    ("demo -o {out} --fps abc", ["--fps", "abc"]),
    ("demo -o {out} --size 8", ["--size 8"]),
    ("demo -o {out} --threads 0", ["--threads 0"]),
    ("demo -o {out} --device tpu", ["--device", "tpu"]),
    ("demo -o {out} --text ''", ["--text is empty"]),
    ("demo -o {out} --text " + LONG_TEXT.strip().replace(" ", "-"), ["characters"]),
    ("demo -o {out} --text hi --audio {in}/line.wav", ["both given"]),
    ("demo -o {in}/notes.txt", ["notes.txt is a file"]),
    # animate
    ("animate {in}/nosuch.wav -o {out}/a.npz", ["nosuch.wav"]),
    ("animate {in}/empty.wav -o {out}/a.npz", ["empty.wav is empty"]),
    ("animate {in}/text.wav -o {out}/a.npz", ["text.wav"]),
    ("animate {in}/line.wav", ["-o/--output"]),
    ("animate {in}/line.wav -o {out}/a.txt", ["a.txt", ".npz or .json"]),
    ("animate {in}/line.wav -o {in}/folder", ["folder is a folder"]),
    ("animate {in}/line.wav -o {in}/notes.txt/a.npz", ["notes.txt is a file"]),
    ("animate {in}/line.wav -o {out}/a.npz --fps 0", ["0"]),
    ("animate {in}/line.wav -o {out}/a.npz --fps abc", ["'abc'"]),
    ("animate {in}/line.wav -o {out}/a.npz --emotion 0:angyr", ["angyr"]),
    ("animate {in}/line.wav -o {out}/a.npz --emotion {in}/nosuch.json", ["nosuch.json"]),
    ("animate {in}/line.wav -o {out}/a.npz --variation 9", ["variation"]),
    ("animate {in}/line.wav -o {out}/a.npz --frames 0", ["--frames 0"]),
    ("animate {in}/line.wav -o {out}/a.npz --first-frame 99999999", ["--first-frame"]),
    ("animate {in}/line.wav -o {out}/a.npz --start-offset abc", ["'abc'"]),
    ("animate {in}/line.wav -o {out}/a.npz --start-offset 100", ["shorter than one frame"]),
    ("animate {in}/line.wav -o {out}/a.npz --seed x", ["--seed", "'x'"]),
    ("animate {in}/line.wav -o {out}/a.npz --weights {in}/nosuch.pt", ["nosuch.pt"]),
    ("animate {in}/line.wav -o {out}/a.npz --text-file {in}/nosuch.txt", ["nosuch.txt"]),
    ("animate {in}/line.wav -o {out}/a.npz --text-file {in}/latin1.txt", ["not UTF-8"]),
    # subject
    ("subject build {in}/nosuch.mp4 --name alice --steps 10 --out {out}/alice --consent ok",
     ["video file not found"]),
    ("subject build {in}/text.wav --name alice --out {out}/alice --consent ok", ["text.wav"]),
    ("subject build {in}/clip.mp4 --name '' --out {out}/alice", ["name is empty"]),
    ("subject build {in}/clip.mp4 --name alice --out {out}/alice", ["consent statement"]),
    ("subject build {in}/clip.mp4 --name alice --out {out}/alice --consent-file "
     "{in}/nosuch.txt", ["nosuch.txt"]),
    ("subject build {in}/clip.mp4 --name alice --out {out}/alice --consent-file "
     "{in}/latin1.txt", ["not UTF-8"]),
    ("subject build {in}/clip.mp4 --name alice --out {out}/alice --consent ' '",
     ["--consent"]),
    ("subject build {in}/clip.mp4 --name alice --out {out}/alice --consent ok --steps 0",
     ["--steps 0"]),
    ("subject build {in}/clip.mp4 --name alice --out {out}/alice --consent ok "
     "--max-frames 0", ["--max-frames 0"]),
    ("subject build {in}/clip.mp4 --name alice --out {in}/notes.txt --consent ok",
     ["notes.txt is a file"]),
    ("subject build {in}/clip.mp4 --name alice --out {out}/alice --consent ok --threads 0",
     ["--threads 0"]),
    ("subject coverage {in}/nosuch.mp4", ["video file not found"]),
    ("subject coverage {in}/text.wav", ["text.wav"]),
    ("subject info nobody", ["unknown subject 'nobody'"]),
    ("subject evaluate nobody", ["unknown subject 'nobody'"]),
    ("subject consent nobody --consent ok", ["unknown subject 'nobody'"]),
    ("subject", ["ACTION"]),
    # render
    ("render nobody --motion {in}/anim.npz --camera front -o {out}/f",
     ["unknown subject 'nobody'"]),
    ("render default --motion {in}/nosuch.npz --camera front -o {out}/f", ["nosuch.npz"]),
    ("render default --motion {in}/anim_empty.npz --camera front -o {out}/f",
     ["anim_empty.npz"]),
    ("render default --motion {in}/anim.npz --camera {in}/nosuch.json -o {out}/f",
     ["nosuch.json"]),
    ("render default --motion {in}/anim.npz --camera front --size 0 -o {out}/f",
     ["--size '0'"]),
    ("render default --motion {in}/anim.npz --camera front", ["-o/--out"]),
    # the rest
    ("verify {in}/nosuch.png", ["nosuch.png"]),
    ("keys curve ''", ["not a file name"]),
    ("keys curve ../x", ["not a file name"]),
    ("keys curve alice --dir {in}/notes.txt", ["notes.txt is a file"]),
    ("motion train --out {in}/notes.txt", ["notes.txt is a file"]),
    ("bench render nobody", ["unknown subject 'nobody'"]),
    ("nosuch", ["invalid choice", "nosuch"]),
]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"/")
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("command, needles", CASES, ids=[c for c, _ in CASES])
def test_every_bad_argument_is_one_line_before_the_work(command, needles, inputs, tmp_path,
                                                        capsys) -> None:
    """In process (fast): exit 2, one `facecast: error: … — …` line naming the user's
    thing, no traceback; no new file or folder anywhere under the output's folder, and
    the inputs as they were."""
    from backend.cli import main

    before = _tree(inputs)
    out = tmp_path / "out"
    out.mkdir()
    argv = shlex.split(command.format(**{"in": inputs, "out": out}))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert_one_line_error(subprocess.CompletedProcess(argv, code, "", err), *needles)
    assert _tree(out) == {}, "a failed command left something behind"
    assert _tree(inputs) == before, "a failed command changed the user's files"


def test_a_failed_demo_leaves_an_earlier_demo_as_it_was(inputs, tmp_path, capsys) -> None:
    from backend.cli import main

    out = tmp_path / "facecast_demo"
    (out / "frames").mkdir(parents=True)
    for name in ("animation.npz", "speech.wav", "frames/000001.png", "my notes.txt"):
        (out / name).write_bytes(b"earlier")
    before = _tree(tmp_path)
    for bad in (["--subject", "nobody"], ["--audio", str(inputs / "empty.wav")]):
        assert main(["demo", "-o", str(out), *bad]) == 2
    assert "facecast: error:" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_subject_build_names_a_missing_clip_before_any_warning(tmp_path) -> None:
    out = facecast("subject", "build", str(tmp_path / "nosuch.mp4"), "--name", "alice",
                   "--steps", "10", "--out", str(tmp_path / "alice"), "--consent", "ok")
    assert_one_line_error(out, "video file not found")
    assert "fog" not in out.stderr and "warning" not in out.stderr.lower(), out.stderr


def test_read_only_outputs_are_named_before_the_work(inputs, tmp_path, namespaces) -> None:
    """The user's file or folder is named (not a temp file), and before any computing:
    only the up-front check says "cannot write"."""
    ro = tmp_path / "ro"
    ro.mkdir()
    cmds = [_cli("animate", str(inputs / "line.wav"), "-o", str(ro / "anim.npz")),
            _cli("demo", "--audio", str(inputs / "short.wav"), "-o", str(ro / "demo")),
            _cli("subject", "build", str(inputs / "clip.mp4"), "--name", "alice", "--out",
                 str(ro / "alice"), "--consent", "ok", "--steps", "10")]
    script = "; ".join(f"{c} 2>&1; echo @@rc=$?" for c in cmds)
    run = _in_namespace(f"mount -t tmpfs -o ro,size=64k tmpfs {ro} && {{ {script}; }}")
    chunks = run.stdout.split("@@rc=")
    assert len(chunks) == 4, run.stdout + run.stderr
    for i, name in enumerate(("anim.npz", "demo", "alice")):
        text = chunks[i] if i == 0 else chunks[i].split("\n", 1)[1]
        code = int(chunks[i + 1].split()[0])
        out = subprocess.CompletedProcess([], code, "", text)
        assert_one_line_error(out, "cannot write", str(ro / name), "read-only file system")
        assert ".tmp-" not in text and "fog" not in text, text


def test_disk_full_during_animate_names_the_file(inputs, tmp_path, namespaces) -> None:
    """One line naming the user's file, no temp file and no traceback from a zip
    writer's finaliser after it."""
    full = tmp_path / "full"
    full.mkdir()
    cmd = _cli("animate", str(inputs / "line.wav"), "-o", str(full / "anim.npz"))
    run = _in_namespace(f"mount -t tmpfs -o size=4k tmpfs {full} && {cmd}; echo @@rc=$?; "
                        f"ls -A {full}")
    code, listing = run.stdout.split("@@rc=")[1].split("\n", 1)
    out = subprocess.CompletedProcess([], int(code), "", run.stderr)
    assert_one_line_error(out, "no space left", str(full / "anim.npz"))
    assert "Exception ignored" not in run.stderr and listing.strip() == "", run.stderr
