"""``facecast bench cluster``: the render farm against the local executor, in one run.

On a private local Ray runtime (as ``facecast serve --cluster local``) it renders the
same frames (the subject's held-out conditioning, cycled) with

* the local executor's loop (``backend.render.render_frames`` in this process) with all cores — what
  ``facecast serve`` without ``--cluster`` does — and with one thread (one actor's share);
* the cluster with 1, 2, 4... actors of one CPU each (subjects loaded before timing:
  steady state),

and prints frames/s, speed-up over the local executor and over one actor, parallel
efficiency, how the pool recovers when its actors are killed again and again while
they render (then a new job must complete with the pool back at its target), and the
per-frame overhead of the cluster path at a cheap setting (a tiny
image, so the renderer's cost does not drown it) two ways: wall time per frame minus the
local loop's (one thread each), and wall time per frame minus the time the actor spent
inside the renderer (its own clock). Actors beyond the machine's cores share them: the
speed-up is bounded by the cores, and the table says so.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import torch

from shared.camera import camera_views

from ..nerf.pipeline import check_conditioning
from ..provenance.payload import Payload
from ..render import render_frames
from ..subject.prepare import SubjectData
from ..subject.store import load_subject
from .render_bench import bench_camera

MARK = Payload.of("bench", "cluster")  # both executors watermark, as every render does


def _landmarks(subject, n: int) -> np.ndarray:
    pack = subject.folder / "heldout.npz"
    if pack.is_file():
        lm = SubjectData.load(pack).landmarks
    else:
        lm = np.asarray(subject.manifest["conditioning"]["landmark_mean"], np.float32)[None]
    return lm[np.arange(n) % len(lm)]


def _inputs(subject, n: int, size: int):
    cam, mw = bench_camera(size)
    return camera_views(cam, mw, n), check_conditioning(_landmarks(subject, n), None, None)


def _local_s(subject, views, cond, threads: int, repeats: int) -> float:
    """Seconds for the local executor's loop over all frames (best of ``repeats``, after
    one warm-up frame)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        next(render_frames(subject, views[:1], cond, fp16=False, payload=MARK))
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in render_frames(subject, views, cond, fp16=False, payload=MARK):
                pass
            best = min(best, time.perf_counter() - t)
        return best
    finally:
        torch.set_num_threads(before)


def _actor_clocks(ray, cluster) -> np.ndarray:
    """Summed over actors: [wall s inside the renderer, CPU s inside the renderer, CPU s
    of the actor processes]."""
    stats = [ray.get(h.ready.remote()) for h in cluster.pool.handles().values()]
    return np.array([sum(s[k] for s in stats) for k in ("render_s", "render_cpu_s",
                                                          "cpu_s")])


def _cluster_s(ray, cluster, folder, views, cond, repeats: int
               ) -> tuple[float, float, float]:
    """(wall s, wall s the actors spent inside the renderer, CPU s spent outside the
    renderer by the gateway and the actors) for all frames; the run with the least wall
    time of ``repeats``, subjects loaded beforehand."""
    from backend.cluster.actors import slice_conditioning

    k = cluster.pool.target
    warm = min(len(views), k * cluster.config.chunk_frames)  # one chunk per actor
    for _ in cluster.render(folder, views[:warm], slice_conditioning(cond, 0, warm),
                            fp16=False, payload=MARK):
        pass
    best = (float("inf"), 0.0, 0.0)
    for _ in range(repeats):
        a0 = _actor_clocks(ray, cluster)
        t, c = time.perf_counter(), time.process_time()
        n = sum(1 for _ in cluster.render(folder, views, cond, fp16=False, payload=MARK))
        wall, gateway_cpu = time.perf_counter() - t, time.process_time() - c
        assert n == len(views)
        inside, inside_cpu, actor_cpu = _actor_clocks(ray, cluster) - a0
        best = min(best, (wall, inside, gateway_cpu + actor_cpu - inside_cpu))
    return best


def _cancel_s(cluster, folder, views, cond, after: int = 2) -> tuple[float, int]:
    """Seconds from setting a job's cancel flag (after ``after`` frames arrived, as the
    server does on CANCEL) until every actor is idle again and answers, and the frames
    the actors rendered in all by then."""
    import ray

    from shared.errors import JobCancelled

    def rendered() -> int:
        return sum(ray.get(h.ready.remote())["frames"]
                   for h in cluster.pool.handles().values())

    before = rendered()
    flag = {"set": False}
    t0 = time.perf_counter()
    try:
        for got, _ in enumerate(cluster.render(folder, views, cond, fp16=False,
                                               payload=MARK,
                                               cancelled=lambda: flag["set"]), 1):
            if got == after:
                flag["set"], t0 = True, time.perf_counter()
    except JobCancelled:
        pass
    while cluster.pool.describe()["busy"]:
        time.sleep(0.005)
    done = rendered()  # every actor answers: its render task has stopped
    return time.perf_counter() - t0, done - before


def _kill_and_recover(ray, cluster, folder, views, cond, kills: int = 4
                      ) -> tuple[int, str, float, int, float]:
    """Kill a busy actor ``kills`` times while jobs render (one kill per chunk's worth of
    frames delivered, so no chunk loses three actors in a row and fails its job), then
    wait for the pool to refill and run a new job: (kills, how the jobs under fire
    ended, seconds until the pool was back at its target, frames the new job delivered,
    its seconds)."""
    from shared.errors import FacecastError

    pool = cluster.pool
    pace = cluster.config.chunk_frames
    killed: list[str] = []
    endings = []
    t0 = time.perf_counter()
    while len(killed) < kills and len(endings) < 3:
        ending, since = "done", pace
        try:
            for _ in cluster.render(folder, views, cond, fp16=False, payload=MARK):
                since += 1
                busy = [n for n in pool.handles(busy=True) if n not in killed]
                if len(killed) < kills and busy and since >= pace:
                    ray.kill(pool.handles()[busy[0]], no_restart=True)
                    killed.append(busy[0])
                    since = 0
        except FacecastError as exc:
            ending = f"error: {exc.problem[:80]}"
        endings.append(ending)
    while pool.describe()["actors"] < pool.target and time.perf_counter() - t0 < 300:
        time.sleep(0.05)
    back = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = sum(1 for _ in cluster.render(folder, views, cond, fp16=False, payload=MARK))
    return len(killed), "; ".join(endings), back, n, time.perf_counter() - t1


def run_cluster_bench(subject_ref: str = "default", actors: tuple[int, ...] = (1, 2, 4),
                      frames: int = 32, size: int = 128, chunk: int = 4,
                      overhead_size: int = 16, overhead_frames: tuple[int, int] = (16, 48),
                      repeats: int = 3) -> None:
    from backend.cluster.runtime import Cluster, ClusterConfig, import_ray

    ray = import_ray()
    logging.getLogger("facecast.cluster").setLevel(logging.WARNING)
    cores = os.cpu_count() or 1
    subject = load_subject(subject_ref, "cpu")
    folder = subject.folder
    views, cond = _inputs(subject, frames, size)
    short, long_ = overhead_frames
    cheap = {n: _inputs(subject, n, overhead_size) for n in overhead_frames}

    print(f"facecast bench cluster — subject {subject_ref!r}, {frames} frames at {size}², "
          f"chunks of {chunk}, {cores} CPU cores, CPU actors of 1 thread each, best of "
          f"{repeats}")
    threads = torch.get_num_threads()
    local_all = _local_s(subject, views, cond, threads, repeats)
    local_one = _local_s(subject, views, cond, 1, repeats)
    cheap_local = {n: _local_s(subject, *cheap[n], 1, repeats) for n in overhead_frames}

    ray.init(num_cpus=max(max(actors), 1), object_store_memory=256 * 2 ** 20,
             include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    rows, cheap_cluster, cancel, recover = [], {}, None, None
    try:
        for k in actors:
            cluster = Cluster(ClusterConfig(address="auto", actors=k, chunk_frames=chunk))
            try:
                rows.append((k, _cluster_s(ray, cluster, folder, views, cond,
                                           repeats)[0]))
                if k == max(actors):
                    cancel = (k, *_cancel_s(cluster, folder, views, cond))
                    recover = (k, *_kill_and_recover(ray, cluster, folder, views, cond))
                if k == 1:
                    cheap_cluster = {n: _cluster_s(ray, cluster, folder, *cheap[n], repeats)
                                     for n in overhead_frames}
            finally:
                cluster.close()
    finally:
        ray.shutdown()

    one = next((w for k, w in rows if k == 1), None)
    print()
    print("| path | frames/s | speed-up vs local executor | vs 1 actor | efficiency per "
          "actor |")
    print("|---|---|---|---|---|")
    print(f"| local executor, {threads} threads (`facecast serve`) | "
          f"{frames / local_all:.2f} | 1.00× | | |")
    print(f"| local loop, 1 thread (one actor's share) | {frames / local_one:.2f} | "
          f"{local_all / local_one:.2f}× | | |")
    for k, wall in rows:
        vs_one = f"{one / wall:.2f}×" if one else ""
        eff = f"{one / wall / k * 100:.0f} %" if one else ""
        note = f" (on {cores} cores)" if k > cores else ""
        print(f"| cluster, {k} actor{'s' if k > 1 else ''}{note} | {frames / wall:.2f} | "
              f"{local_all / wall:.2f}× | {vs_one} | {eff} |")
    if cheap_cluster:
        dn = long_ - short
        (w1, r1, c1), (w2, r2, c2) = cheap_cluster[short], cheap_cluster[long_]
        l1, l2 = cheap_local[short], cheap_local[long_]
        print()
        print(f"Overhead of the cluster path, 1 actor, {overhead_size}² frames (cheap, so "
              f"the renderer does not drown it), from runs of {short} and {long_} frames "
              "(per frame = slope, per job = what is left):")
        print(f"- wall per frame: cluster {(w2 - w1) / dn * 1e3:.1f} ms, local loop "
              f"(1 thread) {(l2 - l1) / dn * 1e3:.1f} ms → overhead "
              f"{((w2 - w1) - (l2 - l1)) / dn * 1e3:+.1f} ms/frame")
        print(f"- cluster wall minus the actor's own time inside the renderer: "
              f"{((w2 - r2) - (w1 - r1)) / dn * 1e3:+.1f} ms/frame, plus "
              f"{(w1 - r1 - short * ((w2 - r2) - (w1 - r1)) / dn) * 1e3:.0f} ms per job "
              "(first chunk's submit and subject check, last frame's trip)")
        print(f"- CPU time spent outside the renderer by the gateway and the actor "
              f"(Ray's threads, serialisation, the scheduler; not inflated by other "
              f"processes on the cores): {(c2 - c1) / dn * 1e3:.1f} ms/frame")
    if cancel is not None:
        k, wait, rendered = cancel
        print()
        print(f"Cancel, {k} actors busy on a {frames}-frame job: every actor idle and "
              f"answering {wait * 1e3:.0f} ms after the cancel (target ≤ 1000 ms); "
              f"{rendered} of {frames} frames rendered")
    if recover is not None:
        k, killed, ending, back, n, took = recover
        print()
        print(f"Kill and recover, {k} actors: {killed} busy actors killed with ray.kill "
              f"while {frames}-frame jobs rendered (they ended: {ending}); the pool was "
              f"back at "
              f"{k}/{k} actors {back:.1f} s after the job started; a new {frames}-frame job "
              f"then delivered {n}/{frames} frames in {took:.1f} s (target: all, at full "
              "pool)")
    print()
    print(f"Speed-up is bounded by this machine's {cores} cores: actors beyond them "
          "(and the gateway, and anything else running) share the same cores, so past "
          f"{cores} actor{'s' if cores > 1 else ''} the efficiency column measures the "
          "machine, not the scheduler. Wall-clock numbers are noisy on a shared machine.")
