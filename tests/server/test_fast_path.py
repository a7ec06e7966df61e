"""The same-host fast path: array payloads through 0600 shared-memory segments, on a
real backend process; integrity, cleanup, crash reclaim and the unchanged remote path."""

from __future__ import annotations

import mmap
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backend.server.launcher import BackendProcess
from shared.errors import ProtocolError
from shared.protocol import BlockingClient, MsgType, load_key
from shared.protocol import shm as shm_mod
from shared.protocol.shm import SHM_DIR, ShmArena, ShmReader

pytestmark = pytest.mark.skipif(not shm_mod.available(),
                                reason="the fast path needs Linux with a writable /dev/shm")


def _segments_of(pid: int) -> list[Path]:
    pattern = f"facecast-{os.geteuid()}-*-{pid}-*"
    return sorted(SHM_DIR.glob(pattern))


def _stream(client: BlockingClient, n: int, shape: list[int], **params) -> list:
    events = list(client.stream("synthetic_frames", {"n_frames": n, "shape": shape, **params},
                                credit=8))
    assert [e.kind for e in events if e.final] == [MsgType.DONE]
    return [e for e in events if e.kind == MsgType.FRAME]


def test_same_host_stream_goes_through_shared_memory_and_is_cleaned_up(backend, key_file):
    with BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=10) as client:
        assert client.client.same_host, "a loopback client on Linux takes the fast path"
        assert "shm" in client.client.server
        frames = _stream(client, 120, [256, 256, 4])  # 256 KiB frames: over the inline limit
        for i, event in enumerate(frames):
            arr = event.arrays[0]
            assert event.body["index"] == i and arr.shape == (256, 256, 4)
            assert np.all(arr == i % 251) and not arr.flags.writeable
        segments = _segments_of(backend.proc.pid)
        assert segments, "the server's frames were in segments"
        for seg in segments:
            st = seg.stat()
            assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
        # Reused, not one per frame: the pool is bounded by what is in flight.
        assert len(segments) <= 16
    assert _wait_gone(lambda: _segments_of(backend.proc.pid)), "unlinked when the client left"
    assert not list(SHM_DIR.glob(f"facecast-{os.geteuid()}-*-{os.getpid()}-*")), \
        "the client's probe and segments are gone too"


def test_input_arrays_travel_through_shared_memory_both_ways(backend, key_file):
    data = np.random.default_rng(0).random((300, 478, 3), dtype=np.float32)  # 1.7 MB in
    with BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=10) as client:
        assert client.client.same_host
        frames = [e for e in client.stream("synthetic_frames", {"n_frames": 5, "pattern": "echo"},
                                           [data]) if e.kind == MsgType.FRAME]
    assert len(frames) == 5 and all(np.array_equal(e.arrays[0], data) for e in frames)


def test_remote_path_is_unchanged(key_file):
    """A client that does not offer it, and a server that refuses it, still stream."""
    with BackendProcess(key_file=key_file, extra_args=["--no-shm"]) as backend:
        with BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=10) as client:
            assert not client.client.same_host and "shm" not in client.client.server
            frames = _stream(client, 20, [256, 256, 4])
        assert not _segments_of(backend.proc.pid)
    with BackendProcess(key_file=key_file) as backend, \
            BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=10,
                           same_host=False) as client:
        assert not client.client.same_host
        frames = _stream(client, 20, [256, 256, 4])
    assert all(np.all(e.arrays[0] == i % 251) for i, e in enumerate(frames))


def test_a_changed_segment_is_caught_and_the_copy_is_private(tmp_path):
    key = os.urandom(32)
    arena, reader = ShmArena(key, 64 << 20, tmp_path), ShmReader(key, tmp_path)
    data = np.arange(100_000, dtype=np.float32)
    ref = arena.share(data)
    got = reader.read(ref)
    assert np.array_equal(got, data)
    # A writer changing the segment after the check cannot change what was received...
    with open(tmp_path / ref.segment, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as m:
        m[:4] = b"\xff\xff\xff\xff"
        assert np.array_equal(got, data)
        # ...and a payload changed before the check is refused.
        with pytest.raises(ProtocolError, match="integrity"):
            reader.read(ref)
    arena.close()
    reader.close()
    assert not list(tmp_path.iterdir())


def test_segments_are_private_and_names_are_checked(tmp_path):
    key = os.urandom(32)
    reader = ShmReader(key, tmp_path)
    arena = ShmArena(key, 64 << 20, tmp_path)
    ref = arena.share(np.zeros(70_000, np.uint8))
    os.chmod(tmp_path / ref.segment, 0o644)
    reader.forget(ref.segment)
    with pytest.raises(ProtocolError, match="private"):
        reader.read(ref)
    bad = [ref.__class__(ref.dtype, ref.shape, ref.nbytes, name, 0, 1, ref.mac)
           for name in ("../etc/passwd", "facecast-0-0-0-" + "0" * 32, "x" * 200)]
    for r in bad:
        with pytest.raises(ProtocolError):
            reader.read(r)
    link = tmp_path / shm_mod.new_name()
    link.symlink_to(tmp_path / ref.segment)
    with pytest.raises(ProtocolError):
        shm_mod.read_probe(link.name, tmp_path)
    arena.close()


def test_the_budget_sends_inline_instead_of_waiting(tmp_path):
    arena = ShmArena(os.urandom(32), 1 << 20, tmp_path)
    refs = [arena.share(np.zeros(300_000, np.uint8)) for _ in range(5)]
    assert sum(r is not None for r in refs) == 3  # 3 x 300 KB fit in 1 MiB
    assert arena.release([[r.slot, r.generation] for r in refs if r is not None]) == 3
    assert arena.release([[refs[0].slot, refs[0].generation]]) == 0  # stale: ignored
    assert arena.share(np.zeros(300_000, np.uint8)) is not None  # reused
    assert len(list(tmp_path.iterdir())) == 3
    arena.close()


def test_segments_of_a_killed_process_are_reclaimed(key_file):
    """A client killed mid-stream leaves its probe/segments; the next start sweeps the
    ones whose process is dead and keeps those of live processes."""
    code = ("import os, sys; from shared.protocol.shm import ShmArena; import numpy as np;"
            "a = ShmArena(os.urandom(32), 1 << 24); a.share(np.zeros(1 << 20, np.uint8));"
            "print(a.names()[0], flush=True); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    dead = SHM_DIR / out.stdout.strip()
    assert dead.exists(), "os._exit skipped the cleanup, as a crash would"
    live = ShmArena(os.urandom(32), 1 << 24)
    live.share(np.zeros(1 << 20, np.uint8))
    try:
        with BackendProcess(key_file=key_file):
            assert not dead.exists()
            assert all((SHM_DIR / n).exists() for n in live.names())
    finally:
        live.close()
        dead.unlink(missing_ok=True)


def test_the_addon_s_vendored_client_takes_the_fast_path(staged_addon, backend, key_file):
    """The add-on vendors shared/: its Client (pure Python + numpy + pyzmq + blake3) does
    the same-host negotiation and reads segments."""
    import importlib

    protocol = importlib.import_module(f"{staged_addon.__name__}.shared.protocol")
    assert protocol.Client is not __import__("shared.protocol").protocol.Client
    client = protocol.Client(backend.endpoint, key=load_key(key_file), timeout_s=10)
    client.connect()
    deadline = time.monotonic() + 10
    while client.state != "ready" and time.monotonic() < deadline:
        client.poll(20)
    assert client.same_host
    job = client.submit("synthetic_frames", {"n_frames": 30, "shape": [128, 128, 4]})
    frames, finals = [], []
    while not finals and time.monotonic() < deadline + 20:
        for e in client.poll(20):
            if e.job == job:
                (finals if e.final else frames).append(e)
    client.close()
    assert [e.kind for e in finals] == ["done"]
    got = [e for e in frames if e.kind == MsgType.FRAME]
    assert len(got) == 30 and all(np.all(e.arrays[0] == i % 251) for i, e in enumerate(got))


def _wait_gone(listing, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while listing() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not listing()
