"""Protocol throughput vs raw ZeroMQ, CPU per frame, and request round trips, in one run.

Every stream crosses a process boundary with the same bytes per frame (512x512 RGBA
float16 = 2 MiB): the raw baselines from a bare PUSH socket in a child process (over TCP
loopback and over IPC), the protocol streams from a real ``facecast serve`` child
(signed, credit-gated) over TCP loopback — once on the remote path (every byte through
the socket, BLAKE3 MAC over every byte) and once on the same-host fast path (payloads
in shared memory, BLAKE3 of each payload, copied out by the client).

Frames per second depend on what else the machine runs; CPU time per frame (sender
process and receiver process, all their threads, measured around each stream) does
much less, so both are printed: on an idle machine with a core per side, the slower
side's CPU per frame bounds the rate.
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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def protocol_stream(client: BlockingClient, frames: int, size: int, credit: int) -> float:
    params = {"n_frames": frames, "shape": [size, size, 4], "dtype": "float16",
              "pattern": "static"}
    first = last = 0.0
    count = 0
    for event in client.stream("synthetic_frames", params, credit=credit):
        if event.kind == MsgType.FRAME:
            count += 1
            last = time.perf_counter()
            if count == 1:
                first = last
        elif event.final and event.kind != MsgType.DONE:
            raise RuntimeError(f"stream failed: {event.body}")
    assert count == frames, f"received {count} of {frames} frames"
    return (count - 1) / (last - first)


def raw_stream(frames: int, size: int, transport: str = "tcp") -> tuple[float, float, float]:
    """Frames/s, and sender and receiver CPU ms per frame."""
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
    cpu0 = time.process_time()
    first = last = 0.0
    for i in range(frames):
        msg = pull.recv(copy=False)
        assert len(msg.buffer) == size * size * 4 * 2
        last = time.perf_counter()
        if i == 0:
            first = last
    receiver_cpu = time.process_time() - cpu0
    _, _, usage = os.wait4(sender.pid, 0)
    sender.returncode = 0
    pull.close(linger=0)
    # The sender's start-up (interpreter, numpy) is in its CPU time: subtract a run of none.
    sender_cpu = usage.ru_utime + usage.ru_stime - _startup_cpu(address, size)
    return ((frames - 1) / (last - first), max(0.0, sender_cpu) / frames * 1e3,
            receiver_cpu / frames * 1e3)


_STARTUP: dict[int, float] = {}


def _startup_cpu(address: str, size: int) -> float:
    """CPU seconds of a raw sender that sends nothing (interpreter and imports)."""
    if size not in _STARTUP:
        proc = subprocess.Popen([sys.executable, "-m", "backend.bench.raw_push", address,
                                 "0", str(size)])
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        _STARTUP[size] = usage.ru_utime + usage.ru_stime
    return _STARTUP[size]


def measured_stream(client: BlockingClient, server_pid: int, frames: int, size: int,
                    credit: int) -> tuple[float, float, float]:
    """Frames/s, and server and client CPU ms per frame, of one protocol stream."""
    server0, client0 = _cpu_s(server_pid), time.process_time()
    fps = protocol_stream(client, frames, size, credit)
    server_cpu = (_cpu_s(server_pid) - server0) / frames * 1e3
    return fps, server_cpu, (time.process_time() - client0) / frames * 1e3


def round_trips(client: BlockingClient, n: int = 200) -> list[float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.call("synthetic_frames", {"n_frames": 0})
        times.append(time.perf_counter() - t)
    return times


def run_protocol_bench(frames: int = 400, size: int = 512, credit: int = 16,
                       repeats: int = 3) -> dict:
    mb = size * size * 4 * 2 / 1e6
    runs: dict[str, list[tuple[float, float, float]]] = {
        "raw_tcp": [], "raw_ipc": [], "tcp": [], "shm": []}
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
            pid = backend.proc.pid
            for _ in range(repeats):
                runs["raw_tcp"].append(raw_stream(frames, size, "tcp"))
                runs["raw_ipc"].append(raw_stream(frames, size, "ipc"))
                runs["tcp"].append(measured_stream(remote, pid, frames, size, credit))
                runs["shm"].append(measured_stream(local, pid, frames, size, credit))
            rtt = round_trips(remote)
    rates = {k: [r[0] for r in v] for k, v in runs.items()}
    best = {k: max(v) for k, v in rates.items()}
    # CPU per frame: the median over rounds, per side.
    cpu = {k: (statistics.median(r[1] for r in v), statistics.median(r[2] for r in v))
           for k, v in runs.items()}
    p50, p99 = statistics.median(rtt) * 1e3, sorted(rtt)[int(0.99 * len(rtt))] * 1e3
    mac = MAC_NAMES[default_mac()]
    print(f"facecast bench protocol: {frames} frames of {size}x{size} RGBA float16 "
          f"({mb:.2f} MB each), credit {credit}, best of {repeats} interleaved rounds")
    print("| path | frames/s | MB/s | vs raw TCP | all rounds (frames/s) | CPU ms/frame, "
          "sender / receiver |\n|---|---|---|---|---|---|")
    rows = [("raw pyzmq PUSH/PULL, TCP loopback", "raw_tcp"),
            ("raw pyzmq PUSH/PULL, IPC", "raw_ipc"),
            (f"facecast, TCP loopback (remote path, {mac} over every byte)", "tcp"),
            (f"facecast, same host (shared memory, {mac} of each payload)", "shm")]
    for label, k in rows:
        print(f"| {label} | {best[k]:.0f} | {best[k] * mb:.0f} | "
              f"{best[k] / best['raw_tcp']:.0%} | {' '.join(f'{r:.0f}' for r in rates[k])} | "
              f"{cpu[k][0]:.2f} / {cpu[k][1]:.2f} |")
    print(f"job round trip (SUBMIT -> ACCEPTED -> DONE, TCP): median {p50:.2f} ms, "
          f"p99 {p99:.2f} ms")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end; "
          "frames/s on a shared machine move with its load, CPU per frame much less)")
    return {"best": best, "rounds": rates, "cpu_ms": cpu, "rtt_p50_ms": p50,
            "rtt_p99_ms": p99}
