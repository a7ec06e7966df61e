"""Protocol throughput vs raw ZeroMQ, and request round-trip latency, in one run.

Every stream crosses a process boundary with the same bytes per frame (512x512 RGBA
float16 = 2 MiB): the raw baselines from a bare PUSH socket in a child process (over TCP
loopback and over IPC), the protocol streams from a real ``facecast serve`` child
(signed, credit-gated) over TCP loopback — once on the remote path (every byte through
the socket, BLAKE3 MAC over every byte) and once on the same-host fast path (payloads
in shared memory, BLAKE3 of each payload, copied out by the client).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from shared.protocol import BlockingClient, MsgType, load_key
from shared.protocol.signing import MAC_NAMES, default_mac

from ..server.launcher import BackendProcess


def protocol_stream(client: BlockingClient, frames: int, size: int, credit: int) -> float:
    params = {"n_frames": frames, "shape": [size, size, 4], "dtype": "float16",
              "pattern": "static"}
    first = last = 0.0
    count = 0
    for event in client.stream("stream_test", params, credit=credit):
        if event.kind == MsgType.FRAME:
            count += 1
            last = time.perf_counter()
            if count == 1:
                first = last
        elif event.final and event.kind != MsgType.DONE:
            raise RuntimeError(f"stream failed: {event.body}")
    assert count == frames, f"received {count} of {frames} frames"
    return (count - 1) / (last - first)


def raw_stream(frames: int, size: int, transport: str = "tcp") -> float:
    ctx = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 16)
    if transport == "tcp":
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        address = f"tcp://127.0.0.1:{port}"
    else:
        address = f"ipc://{tempfile.gettempdir()}/facecast-bench-{os.getpid()}.sock"
        pull.bind(address)
    sender = subprocess.Popen([sys.executable, "-m", "backend.bench.raw_push", address,
                               str(frames), str(size)])
    first = last = 0.0
    for i in range(frames):
        msg = pull.recv(copy=False)
        assert len(msg.buffer) == size * size * 4 * 2
        last = time.perf_counter()
        if i == 0:
            first = last
    sender.wait()
    pull.close(linger=0)
    return (frames - 1) / (last - first)


def round_trips(client: BlockingClient, n: int = 200) -> list[float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.call("stream_test", {"n_frames": 0})
        times.append(time.perf_counter() - t)
    return times


def run_protocol_bench(frames: int = 400, size: int = 512, credit: int = 16,
                       repeats: int = 3) -> dict:
    mb = size * size * 4 * 2 / 1e6
    rates: dict[str, list[float]] = {"raw_tcp": [], "raw_ipc": [], "tcp": [], "shm": []}
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "bench.key"
        with BackendProcess(key_file=key_file) as backend, \
                BlockingClient(backend.endpoint, key=load_key(key_file),
                               same_host=False) as remote, \
                BlockingClient(backend.endpoint, key=load_key(key_file)) as local:
            if not local.client.same_host:
                raise RuntimeError("the same-host fast path was not negotiated (needs Linux "
                                   "with a writable /dev/shm)")
            protocol_stream(remote, 20, size, credit)  # warm-up
            protocol_stream(local, 20, size, credit)
            # Interleaved, so each path sees the same background load in each round.
            for _ in range(repeats):
                rates["raw_tcp"].append(raw_stream(frames, size, "tcp"))
                rates["raw_ipc"].append(raw_stream(frames, size, "ipc"))
                rates["tcp"].append(protocol_stream(remote, frames, size, credit))
                rates["shm"].append(protocol_stream(local, frames, size, credit))
            rtt = round_trips(remote)
    best = {k: max(v) for k, v in rates.items()}
    p50, p99 = statistics.median(rtt) * 1e3, sorted(rtt)[int(0.99 * len(rtt))] * 1e3
    mac = MAC_NAMES[default_mac()]
    print(f"facecast bench protocol: {frames} frames of {size}x{size} RGBA float16 "
          f"({mb:.2f} MB each), credit {credit}, best of {repeats} interleaved rounds")
    print("| path | frames/s | MB/s | vs raw TCP | all rounds (frames/s) |\n|---|---|---|---|---|")
    rows = [("raw pyzmq PUSH/PULL, TCP loopback", "raw_tcp"),
            ("raw pyzmq PUSH/PULL, IPC", "raw_ipc"),
            (f"facecast, TCP loopback (remote path, {mac} over every byte)", "tcp"),
            (f"facecast, same host (shared memory, {mac} of each payload)", "shm")]
    for label, k in rows:
        print(f"| {label} | {best[k]:.0f} | {best[k] * mb:.0f} | "
              f"{best[k] / best['raw_tcp']:.0%} | {' '.join(f'{r:.0f}' for r in rates[k])} |")
    print(f"job round trip (SUBMIT -> ACCEPTED -> DONE, TCP): median {p50:.2f} ms, "
          f"p99 {p99:.2f} ms")
    return {"best": best, "rounds": rates, "rtt_p50_ms": p50, "rtt_p99_ms": p99}
