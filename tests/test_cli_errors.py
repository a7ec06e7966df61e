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

REPO = Path(__file__).resolve().parents[1]


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
