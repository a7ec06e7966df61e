"""Protocol throughput vs raw ZeroMQ, and request round-trip latency.

Both streams cross a process boundary over TCP loopback with the same bytes per frame
(512x512 RGBA float16 = 2 MiB): the protocol stream comes from a real ``facecast serve``
child (signed, credit-gated), the raw one from a bare PUSH socket in a child process.
"""

from __future__ import annotations

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


def raw_stream(frames: int, size: int) -> float:
    ctx = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 16)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    sender = subprocess.Popen([sys.executable, "-m", "backend.bench.raw_push",
                               f"tcp://127.0.0.1:{port}", str(frames), str(size)])
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
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "bench.key"
        with BackendProcess(key_file=key_file) as backend, \
                BlockingClient(backend.endpoint, key=load_key(key_file)) as client:
            protocol_stream(client, 20, size, credit)  # warm-up
            proto = max(protocol_stream(client, frames, size, credit) for _ in range(repeats))
            raw = max(raw_stream(frames, size) for _ in range(repeats))
            rtt = round_trips(client)
    ratio = proto / raw
    p50, p99 = statistics.median(rtt) * 1e3, sorted(rtt)[int(0.99 * len(rtt))] * 1e3
    print(f"facecast bench protocol: {frames} frames of {size}x{size} RGBA float16 "
          f"({mb:.2f} MB each), credit {credit}, best of {repeats}, TCP loopback")
    print("| path | frames/s | MB/s |\n|---|---|---|")
    print(f"| raw pyzmq PUSH/PULL | {raw:.0f} | {raw * mb:.0f} |")
    print(f"| facecast protocol ({MAC_NAMES[default_mac()]}, credit) | {proto:.0f} | "
          f"{proto * mb:.0f} |")
    print(f"ratio protocol/raw: {ratio:.1%}  (target >= 90%)")
    print(f"job round trip (SUBMIT -> ACCEPTED -> DONE): median {p50:.2f} ms, p99 {p99:.2f} ms")
    return {"raw_fps": raw, "protocol_fps": proto, "ratio": ratio, "rtt_p50_ms": p50,
            "rtt_p99_ms": p99}
