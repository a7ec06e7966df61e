"""Render farm: a real local Ray runtime (logical resources) behind the real ZeroMQ
gateway, a real client over loopback. One runtime per module: Ray starts in seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backend.cluster.runtime import Cluster, ClusterConfig
from shared.errors import InputError
from shared.protocol import MsgType
from tests.cluster_helpers import (
    SIZE,
    connect,
    connect_to,
    frames_of,
    gateway,
    landmarks,
    reference_frames,
    render_params,
)
from tests.protocol_helpers import wait_for

pytestmark = pytest.mark.timeout(180)
N = 24  # frames of the longer jobs
CHUNK = 3


@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray", reason="the `cluster` extra (Ray) is not installed")
    # 3 logical CPUs: the gateway's two actors plus room for a second pool in one test.
    ray.init(num_cpus=3, object_store_memory=96 * 2 ** 20, include_dashboard=False,
             log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def farm(ray_runtime, tmp_path_factory):
    from shared.protocol.keys import ensure_key_file

    key, _ = ensure_key_file(tmp_path_factory.mktemp("farm") / "hmac.key")
    config = ClusterConfig(address="auto", actors=2, chunk_frames=CHUNK)
    with gateway(key, config) as server:
        yield server, key


@pytest.fixture(scope="module")
def reference() -> list:
    return reference_frames(landmarks(N))


def actor_stats(ray, handles: dict) -> dict:
    return {name: ray.get(h.ready.remote(), timeout=10) for name, h in handles.items()}


def run_job(server, key, n: int, credit: int = 4) -> tuple[list, object]:
    with connect(server, key) as client:
        events = list(client.stream("render", render_params(), [landmarks(n)],
                                    credit=credit))
    return frames_of(events), events[-1]


def test_frames_in_order_and_identical_to_the_local_executor(farm, backend, key_file
                                                             ) -> None:
    server, key = farm
    n = 10
    frames, final = run_job(server, key, n)
    assert final.kind == MsgType.DONE, final.body
    assert [f.body["index"] for f in frames] == list(range(n))
    assert final.body["cluster"]["chunks"] == -(-n // CHUNK)
    assert final.body["cluster"]["actors_used"] == 2
    # The local executor (a plain `facecast serve` process) sends the same bytes.
    with connect(backend, key_file) as client:
        local = frames_of(list(client.stream("render", render_params(), [landmarks(n)])))
    assert len(local) == n
    reference = reference_frames(landmarks(n))  # the watermark names this request
    for ours, theirs, ref in zip(frames, local, reference, strict=True):
        assert ours.arrays[0].shape == (SIZE, SIZE, 4)
        assert np.array_equal(ours.arrays[0], theirs.arrays[0])
        assert np.array_equal(ours.arrays[1], theirs.arrays[1])
        assert np.array_equal(ours.arrays[0], ref[0])
    assert frames[0].arrays[0][..., 3].mean() > 20  # a face, not an empty frame
    with connect(server, key) as client:
        info = client.call("info").body["cluster"]
    assert info["actors"] == 2 and info["devices"] == {"cpu": 2} and info["nodes"] == 1


def test_an_actor_killed_mid_job_loses_and_duplicates_nothing(farm, ray_runtime,
                                                              reference) -> None:
    from backend.cluster.runtime import active_cluster

    ray = ray_runtime
    server, key = farm
    pool = active_cluster().pool
    killed = None
    got = []
    with connect(server, key) as bc:
        job = bc.client.submit("render", render_params(), [landmarks(N)], credit=4)
        final = None
        while final is None:
            for e in bc.client.poll(20):
                if e.job != job:
                    continue
                if e.kind == MsgType.FRAME:
                    got.append(e)
                if e.final:
                    final = e
            if killed is None and len(got) >= 2:
                busy = pool.handles(busy=True)  # actors rendering right now
                if busy:
                    killed, handle = next(iter(busy.items()))
                    ray.kill(handle, no_restart=True)
    assert killed is not None
    assert final.kind == MsgType.DONE, final.body
    assert [f.body["index"] for f in got] == list(range(N))  # none lost, none twice
    for f, (rgba, depth) in zip(got, reference, strict=True):
        assert np.array_equal(f.arrays[0], rgba) and np.array_equal(f.arrays[1], depth)
    assert final.body["cluster"]["resubmitted"] >= 1
    # The pool replaced the lost actor.
    assert wait_for(lambda: pool.describe()["actors"] == 2 and killed not in
                    pool.live_names(), timeout_s=30)


def test_four_kills_in_a_row_then_a_new_job_completes_at_full_pool(farm, ray_runtime
                                                                    ) -> None:
    """Render actors killed four times while they work (the old pool stopped replacing
    them after 2 x target starts a minute, for good): the pool refills with back-off,
    and a new job completes with the pool back at its target."""
    from backend.cluster.runtime import active_cluster

    ray = ray_runtime
    server, key = farm
    pool = active_cluster().pool
    killed: list[str] = []
    short = []  # what info said while the pool was below its target
    with connect(server, key) as bc:
        job = bc.client.submit("render", render_params(), [landmarks(60)], credit=4)
        final = None
        since = CHUNK  # frames since the last kill: one chunk's worth between kills, so
        deadline = time.monotonic() + 120  # no chunk loses 3 actors in a row
        while final is None and time.monotonic() < deadline:
            for e in bc.client.poll(20):
                since += e.job == job and e.kind == MsgType.FRAME
                final = e if e.job == job and e.final else final
            busy = {n: h for n, h in pool.handles(busy=True).items() if n not in killed}
            if len(killed) < 4 and busy and since >= CHUNK:
                name, handle = next(iter(busy.items()))
                ray.kill(handle, no_restart=True)
                killed.append(name)
                since = 0
            refill = pool.describe().get("refill")
            if refill is not None:
                short.append(refill)
        if final is None:
            bc.client.cancel(job)
        assert len(killed) == 4, f"only {len(killed)} kills: the job ended first"
        assert wait_for(lambda: pool.describe()["actors"] == 2, timeout_s=60), \
            pool.describe()
        events = list(bc.stream("render", render_params(), [landmarks(6)]))
        info = bc.call("info").body["cluster"]
    assert events[-1].kind == MsgType.DONE, events[-1].body
    assert [f.body["index"] for f in frames_of(events)] == list(range(6))
    assert info["actors"] == info["target"] == 2 and info.get("refill") is None
    assert short and all(r["missing"] >= 1 for r in short)


def test_cancel_reaches_the_actors_and_frees_them(farm, ray_runtime) -> None:
    """Cancel stops the actors' render tasks (they render no more frames of the job and
    take the next at once). How fast is measured by ``facecast bench cluster`` (target
    <= 1 s); here the bound is loose so a loaded machine cannot fail it."""
    from backend.cluster.runtime import active_cluster

    ray = ray_runtime
    server, key = farm
    pool = active_cluster().pool
    with connect(server, key) as bc:
        job = bc.client.submit("render", render_params(), [landmarks(300)], credit=8)
        got = 0
        while got < 4:
            got += len(frames_of(bc.client.poll(20)))
        assert pool.describe()["busy"] >= 1
        bc.client.cancel(job)
        final = None
        while final is None:
            final = next((e for e in bc.client.poll(20) if e.job == job and e.final), None)
        assert final.kind == MsgType.CANCELLED
        # Every actor is free again and answers (an actor runs one call at a time, so
        # an answer means its render task has stopped).
        assert wait_for(lambda: pool.describe()["busy"] == 0, timeout_s=15.0)
        stats = actor_stats(ray, pool.handles())
        rendered = sum(s["frames"] for s in stats.values())
        assert rendered < 300
        time.sleep(0.3)
        assert sum(s["frames"] for s in actor_stats(ray, pool.handles()).values()) == rendered
        # ...and take the next job at once.
        done = bc.call("render", render_params(), [landmarks(4)])
        assert done.body["frames"] == 4


def test_a_subject_is_loaded_once_per_actor(farm, ray_runtime) -> None:
    from backend.cluster.runtime import active_cluster

    server, key = farm
    for _ in range(2):
        frames, final = run_job(server, key, 4 * CHUNK)
        assert final.kind == MsgType.DONE and len(frames) == 4 * CHUNK
    stats = actor_stats(ray_runtime, active_cluster().pool.handles())
    assert sum(s["chunks"] for s in stats.values()) >= 8
    assert all(s["subject_loads"] == 1 for s in stats.values()), stats


def test_no_actor_able_to_take_the_subject_is_a_clear_job_error(ray_runtime) -> None:
    from backend.nerf.pipeline import check_conditioning
    from backend.provenance.payload import Payload
    from backend.subject.store import resolve_subject
    from shared.camera import BlenderCamera, camera_views
    from tests.cluster_helpers import FRONT

    # A second pool on the spare logical CPU whose actors reserve only 8 MiB.
    small = Cluster(ClusterConfig(address="auto", actors=1, actor_memory=8 * 2 ** 20,
                                  actor_timeout_s=5))
    try:
        views = camera_views(BlenderCamera(resolution_x=16, resolution_y=16), FRONT, 2)
        frames = small.render(resolve_subject("default"), views,
                              check_conditioning(landmarks(2), None, None), fp16=False,
                              payload=Payload.of("test", "test"))
        with pytest.raises(InputError) as err:
            list(frames)
        assert "no render actor of the cluster can take this subject" in err.value.message
        assert "needs about" in err.value.message and "--actor-memory" in err.value.message
    finally:
        small.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(args: list[str], tmp_path: Path, timeout: float = 60, prelude: str = "",
           env: dict | None = None) -> subprocess.CompletedProcess:
    argv = ["serve", "--address", "tcp://127.0.0.1:0", "--key-file",
            str(tmp_path / "k.key"), *args]
    code = f"import sys\n{prelude}\nfrom backend.cli import main\nsys.exit(main({argv!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_an_unreachable_cluster_address_fails_at_start_not_a_hang(tmp_path) -> None:
    pytest.importorskip("ray", reason="the `cluster` extra (Ray) is not installed")
    for args, env in ((["--cluster", f"127.0.0.1:{_free_port()}"], {}),
                      # `auto` follows $RAY_ADDRESS, where Ray alone would wait a minute
                      (["--cluster", "auto"], {"RAY_ADDRESS": f"127.0.0.1:{_free_port()}"})):
        t0 = time.monotonic()
        out = _serve(args, tmp_path, env=env)
        assert out.returncode == 2, out.stderr
        assert time.monotonic() - t0 < 30
        assert "facecast: error: no Ray cluster answered at 127.0.0.1:" in out.stderr
        assert "ray start --head" in out.stderr
    out = _serve(["--cluster", "ray://10.0.0.5:10001"], tmp_path)
    assert out.returncode == 2 and "is a Ray Client address" in out.stderr, out.stderr


def test_without_ray_the_error_names_the_extra(tmp_path) -> None:
    out = _serve(["--cluster", "auto"], tmp_path, prelude="sys.modules['ray'] = None")
    assert out.returncode == 2, out.stderr
    assert "Ray is not installed" in out.stderr and "facecast[cluster]" in out.stderr
    assert "listening" not in out.stdout


def test_a_client_that_never_grants_credit_holds_the_actors_back(farm, ray_runtime) -> None:
    """Back-pressure: with the client's credit spent, the actors stop once the window is
    full — at most window × chunk frames rendered, none piling up behind it."""
    from backend.cluster.runtime import active_cluster

    server, key = farm
    pool = active_cluster().pool
    window = 2 * pool.target  # the default: twice the actors
    before = sum(s["frames"] for s in actor_stats(ray_runtime, pool.handles()).values())
    with connect(server, key) as bc:
        job = bc.client.submit("render", render_params(), [landmarks(300)], credit=2,
                               auto_credit=False)
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < deadline:
            got += frames_of(bc.client.poll(20))
        assert len(got) == 2
        # The window fills, then every actor goes idle while the client still reads.
        assert wait_for(lambda: pool.describe()["busy"] == 0, timeout_s=20)
        time.sleep(0.5)
        got += frames_of(bc.client.poll(200))
        assert len(got) == 2  # nothing beyond the credit
        rendered = sum(s["frames"] for s in actor_stats(
            ray_runtime, pool.handles()).values()) - before
        assert 2 < rendered <= window * CHUNK
        bc.client.cancel(job)


def _descendants(pid: int) -> set[int]:
    from backend.cluster.reaper import descendants

    return set(descendants(pid))


def test_facecast_serve_cluster_local_as_a_process(key_file) -> None:
    """The CLI path end to end: `facecast serve --cluster local` starts its own Ray
    runtime, serves a real client, and leaves no Ray process behind when stopped."""
    pytest.importorskip("ray", reason="the `cluster` extra (Ray) is not installed")
    from backend.server.launcher import BackendProcess

    with BackendProcess(key_file=key_file, extra_args=[
            "--cluster", "local", "--cluster-actors", "1", "--cluster-chunk", "2"]) as proc:
        assert "render farm: 1 actors" in proc.log_tail()
        ray_processes = _descendants(proc.proc.pid)
        assert ray_processes  # gcs_server, raylet, the actor...
        with connect_to(proc.endpoint, key_file) as client:
            assert client.call("info").body["cluster"]["actors"] == 1
            events = list(client.stream("render", render_params(), [landmarks(5)]))
        frames = frames_of(events)
        assert events[-1].kind == MsgType.DONE
        assert [f.body["index"] for f in frames] == list(range(5))
        reference = reference_frames(landmarks(5))  # the watermark names this request
        for f, (rgba, depth) in zip(frames, reference, strict=True):
            assert np.array_equal(f.arrays[0], rgba) and np.array_equal(f.arrays[1], depth)
        proc.stop(timeout=30)
    assert wait_for(lambda: not any(Path(f"/proc/{p}").exists() and "Z" not in
                                    _state(p) for p in ray_processes), timeout_s=15)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
