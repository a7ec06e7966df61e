"""``facecast bench fuzz``: a real backend under hostile load, with its stdout a pipe
nobody reads.

While an ``info`` prober measures latency the whole time and the server's memory is
sampled, the bench floods it with unsigned junk and with signed hostile messages (every
class in ``hostile.py``), streams to a reader ten times slower than the producer at
credit 2^63, starts a stream at credit 0 and grants 2^63, tries to take over a
streaming client's session, runs many clients' heavy jobs at once, and finally times
how long SIGTERM takes. A second backend, logging to a file, then meets the byte
limits: big frames to a reader that stops, and every kind of bad shared-memory payload
(each must get its error reply), with its memory before and after and its log searched
for tracebacks. It prints one table; :func:`run_fuzz_bench` returns the numbers (a short
run of it is a test).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from shared.audio import SAMPLE_RATE
from shared.errors import FacecastError
from shared.protocol import BlockingClient, Client, Message, MsgType, load_key
from shared.protocol import shm as shm_mod
from shared.protocol.keys import ensure_key_file

from ..server.launcher import BackendProcess
from .hostile import (
    RawPeer,
    StallResult,
    not_negotiated_shm,
    shm_abuse,
    shm_session,
    signed_hostile,
    stalled_reader,
    unsigned_junk,
)


@dataclass
class StreamCheck:
    """One stream: what was sent and what arrived."""

    name: str
    expected: int
    received: int = 0
    in_order: bool = True
    finals: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.received == self.expected and self.in_order
                and self.finals == [MsgType.DONE])


@dataclass
class LimitsResult:
    """The byte-limit phase, on a backend of its own."""

    stall: StallResult | None = None
    #: (case, how its job ended: "error bad_request", "done", "no reply")
    shm_cases: list[tuple[str, str]] = field(default_factory=list)
    shm_rss_before: int = 0
    shm_rss_peak: int = 0
    shm_rss_after: int = 0
    tracebacks: int = 0

    @property
    def shm_growth_mb(self) -> float:
        return (self.shm_rss_peak - self.shm_rss_before) / 1e6

    def unanswered(self) -> list[str]:
        return [case for case, reply in self.shm_cases if not reply.startswith("error")]


@dataclass
class FuzzResult:
    unsigned_sent: int = 0
    signed_sent: int = 0
    signed_classes: Counter = field(default_factory=Counter)
    send_stalls: int = 0
    info_ms: list[float] = field(default_factory=list)
    info_failures: int = 0
    rss_base: int = 0
    rss_peak: int = 0
    streams: list[StreamCheck] = field(default_factory=list)
    takeover_tried: int = 0
    #: Messages of the victim's job that reached the attacker (must be 0).
    takeover_stolen: int = 0
    mix_clients: int = 0
    mix_jobs_done: int = 0
    mix_jobs: int = 0
    mix_info_ms: list[float] = field(default_factory=list)
    mix_spread_s: float = 0.0
    #: How the mix's jobs that did not finish ended (or "no final reply").
    mix_failures: list[str] = field(default_factory=list)
    alive: bool = True
    stop_s: float = 0.0
    limits: LimitsResult = field(default_factory=LimitsResult)

    @property
    def rss_growth_mb(self) -> float:
        return (self.rss_peak - self.rss_base) / 1e6

    def frames_lost(self) -> int:
        return sum(max(0, s.expected - s.received) for s in self.streams)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Prober(threading.Thread):
    """Asks ``info`` every ``interval_s`` on its own connection and times the answers."""

    def __init__(self, endpoint: str, key: bytes, interval_s: float = 0.05) -> None:
        super().__init__(daemon=True, name="info-prober")
        self.endpoint, self.key, self.interval_s = endpoint, key, interval_s
        self.latencies: list[float] = []
        self.failures = 0
        self._halt = threading.Event()

    def run(self) -> None:
        client = None
        while not self._halt.is_set():
            try:
                if client is None:
                    client = BlockingClient(self.endpoint, key=self.key, timeout_s=5,
                                            name="info-prober")
                t = time.perf_counter()
                client.call("info")
                self.latencies.append((time.perf_counter() - t) * 1e3)
            except FacecastError:
                self.failures += 1
                if client is not None:
                    client.close()
                client = None
            self._halt.wait(self.interval_s)
        if client is not None:
            client.close()

    def take(self) -> list[float]:
        taken, self.latencies = self.latencies, []
        return taken

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


class _RssSampler(threading.Thread):
    def __init__(self, backend: BackendProcess) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.backend = backend
        self.peak = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.backend.rss_bytes())
            self._halt.wait(0.05)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _flood_unsigned(endpoint: str, n: int, result: FuzzResult) -> None:
    peer = RawPeer(endpoint, b"\0" * 32)
    junk = unsigned_junk()
    for _ in range(n):
        try:
            peer.send(next(junk))
            result.unsigned_sent += 1
        except zmq.Again:  # the server stopped reading for 5 s
            result.send_stalls += 1
    peer.close()


def _flood_signed(endpoint: str, key: bytes, n: int, result: FuzzResult) -> None:
    """A key holder that says HELLO once and never reads a reply again."""
    peer = RawPeer(endpoint, key)
    peer.send(peer.hello_frames())
    for name, frames in signed_hostile(peer):
        if result.signed_sent >= n:
            break
        try:
            peer.send(frames)
            result.signed_sent += 1
            result.signed_classes[name] += 1
        except zmq.Again:
            result.send_stalls += 1
            break
    peer.close()


def _slow_reader(endpoint: str, key: bytes, n: int, produce_s: float) -> StreamCheck:
    """Credit 2^63 (no flow control at all from the client) and a reader 10x slower."""
    check = StreamCheck(f"slow reader (10x slower), credit 2^63, {n} frames", n)
    peer = RawPeer(endpoint, key)
    peer.send(peer.hello_frames())
    assert peer.recv(5) is not None
    peer.send(peer.codec.encode(Message(MsgType.SUBMIT, {
        "kind": "synthetic_frames", "credit": 2**63,
        "params": {"n_frames": n, "shape": [128, 128, 4], "delay_s": produce_s}}, job="slow")))
    _read_stream(peer, check, read_delay_s=10 * produce_s)
    peer.close()
    return check


def _credit_zero_then_huge(endpoint: str, key: bytes, n: int) -> StreamCheck:
    check = StreamCheck(f"credit 0, then one grant of 2^63, {n} frames", n)
    peer = RawPeer(endpoint, key)
    peer.send(peer.hello_frames())
    assert peer.recv(5) is not None
    peer.send(peer.codec.encode(Message(MsgType.SUBMIT, {
        "kind": "synthetic_frames", "credit": 0, "params": {"n_frames": n, "shape": [64, 64]}},
        job="zero")))
    early = _read_stream(peer, StreamCheck("", 0), read_delay_s=0, max_s=0.5)
    if early:
        check.in_order = False  # frames without credit
    peer.send(peer.codec.encode(Message(MsgType.CREDIT, {"n": 2**63}, job="zero")))
    _read_stream(peer, check, read_delay_s=0)
    peer.close()
    return check


def _read_stream(peer: RawPeer, check: StreamCheck, read_delay_s: float,
                 max_s: float = 600.0) -> int:
    """Read one job's messages until its final; PING every second like a real client."""
    deadline = time.monotonic() + max_s
    last_ping = time.monotonic()
    frames = 0
    while time.monotonic() < deadline and not check.finals:
        if time.monotonic() - last_ping > 1.0:
            peer.send(peer.codec.encode(Message(MsgType.PING)))
            last_ping = time.monotonic()
        msg = peer.recv(min(1.0, max(0.01, deadline - time.monotonic())))
        if msg is None or msg.job is None:
            continue
        if msg.type == MsgType.FRAME:
            if msg.body.get("index") != check.received:
                check.in_order = False
            check.received += 1
            frames += 1
            if read_delay_s:
                time.sleep(read_delay_s)
        elif msg.type in MsgType.FINAL_TYPES:
            check.finals.append(msg.type)
    if check.finals:  # anything after the final would break the one-final promise
        while (late := peer.recv(0.3)) is not None:
            if late.job is not None and late.type in MsgType.FINAL_TYPES:
                check.finals.append(late.type)
    return frames


def _takeover(endpoint: str, key: bytes, attempts: int, result: FuzzResult) -> StreamCheck:
    """While a victim streams, a key holder says HELLO (and sends CANCEL/CREDIT) with the
    victim's session id; the victim must get every frame and the attacker none."""
    n = 120
    check = StreamCheck(f"victim stream during {attempts} takeover attempts", n)
    victim = Client(endpoint, key=key, timeout_s=10, same_host=False)
    victim.connect()
    while victim.state != "ready":
        victim.poll(20)
    job = victim.submit("synthetic_frames", {"n_frames": n, "shape": [8, 8], "delay_s": 0.01},
                        credit=4)
    attacker = RawPeer(endpoint, key, session=victim._codec.session)
    thief_frames = 0
    for i in range(attempts):
        attacker.send(attacker.hello_frames())
        attacker.send(attacker.codec.encode(Message(MsgType.CANCEL, job=job)))
        result.takeover_tried += 1
        reply = attacker.recv(0.02)
        if reply is not None and reply.job == job and reply.type != MsgType.ERROR:
            thief_frames += 1
        for event in victim.poll(5):
            _count(check, event)
        if i % 10 == 0:
            time.sleep(0.01)
    deadline = time.monotonic() + 60
    while not check.finals and time.monotonic() < deadline:
        for event in victim.poll(20):
            _count(check, event)
    while (msg := attacker.recv(0.2)) is not None:
        thief_frames += msg.job == job and msg.type != MsgType.ERROR
    result.takeover_stolen += thief_frames
    victim.close()
    attacker.close()
    return check


def _count(check: StreamCheck, event) -> None:
    if event.kind == MsgType.FRAME:
        check.in_order &= event.body.get("index") == check.received
        check.received += 1
    elif event.final:
        check.finals.append(event.kind)


def _mix(endpoint: str, key: bytes, clients: int, real: bool, result: FuzzResult,
         prober: _Prober, timeout_s: float) -> None:
    """``clients`` clients, each running two heavy jobs at once, all submitted together."""
    jobs = _real_jobs() if real else [
        ("synthetic_frames", {"n_frames": 30, "shape": [32, 32, 4], "delay_s": 0.02}, []),
        ("synthetic_frames", {"n_frames": 20, "shape": [64, 64], "delay_s": 0.03}, [])]
    conns = [Client(endpoint, key=key, timeout_s=60, name=f"mix-{i}") for i in range(clients)]
    for c in conns:
        c.connect()
    while any(c.state != "ready" for c in conns):
        for c in conns:
            c.poll(5)
    prober.take()
    started = time.monotonic()
    pending: dict[str, int] = {}
    for i, c in enumerate(conns):
        for kind, params, arrays in jobs:
            pending[c.submit(kind, params, arrays, credit=8)] = i
    result.mix_clients, result.mix_jobs = clients, len(pending)
    finished_at: dict[int, float] = {}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for c in conns:
            for event in c.poll(2):
                if event.final and event.job in pending:
                    i = pending.pop(event.job)
                    result.mix_jobs_done += event.kind == MsgType.DONE
                    if event.kind != MsgType.DONE:
                        result.mix_failures.append(
                            f"{event.kind}: {str(event.body.get('message', ''))[:200]}")
                    finished_at[i] = time.monotonic() - started
    result.mix_failures += ["no final reply"] * len(pending)
    result.mix_info_ms = prober.take()
    if finished_at:
        result.mix_spread_s = max(finished_at.values()) - min(finished_at.values())
    for c in conns:
        c.close()


def _real_jobs() -> list[tuple[str, dict, list]]:
    """A small render of the shipped subject and a 1-second animate, per client."""
    from backend.subject.framing import front_camera
    from backend.subject.store import read_manifest, resolve_subject
    from shared.blendshapes import ARKIT_BLENDSHAPES

    rate = SAMPLE_RATE
    t = np.arange(rate, dtype=np.float32) / rate
    pcm = (0.2 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(
        np.float32)
    frames = 6
    blend = np.zeros((frames, 52), np.float32)
    blend[:, ARKIT_BLENDSHAPES.index("jawOpen")] = np.linspace(0, 0.6, frames)
    camera = front_camera(read_manifest(resolve_subject("default")), 64)
    return [("render", {"subject": "default", "camera": camera,
                        "array_names": ["blendshapes"]}, [blend]),
            ("animate", {"sample_rate": rate, "fps": 24}, [pcm])]


def _warm_up(endpoint: str, key: bytes) -> None:
    """Load torch and each job's modules first, so memory growth measures the load."""
    with BlockingClient(endpoint, key=key, timeout_s=120) as client:
        client.call("info")
        client.call("synthetic_frames", {"n_frames": 2})
        try:  # refused after the imports (n_frames beyond the audio)
            client.call("animate", {"sample_rate": SAMPLE_RATE, "n_frames": 10**6},
                        [np.zeros(1600, np.float32)])
        except FacecastError:
            pass


def _limits(key_file: Path, key: bytes, out: LimitsResult, big_frames: int,
            big_frame_bytes: int, stall_s: float, shm_segment_bytes: int) -> None:
    """Big frames to a reader that stops, then bad shared-memory payloads."""
    with BackendProcess(key_file=key_file) as backend:
        with BlockingClient(backend.endpoint, key=key, timeout_s=120) as client:
            client.call("synthetic_frames", {"n_frames": 2})  # torch and the job modules
        time.sleep(0.3)
        out.stall = stalled_reader(backend.endpoint, key, backend.rss_bytes,
                                   frames=big_frames, frame_bytes=big_frame_bytes,
                                   stall_s=stall_s)
        if shm_mod.available():
            time.sleep(0.3)
            out.shm_rss_before = backend.rss_bytes()
            peer, plain = shm_session(backend.endpoint, key), RawPeer(backend.endpoint, key)
            arena = shm_mod.ShmArena(key, 512 << 20)
            sampler = _RssSampler(backend)
            sampler.start()
            try:
                plain.send(plain.hello_frames())
                plain.recv(5)
                # Named four times, the bench's 200 MB segment is 800 MB if the server
                # read it.
                cases = [(peer, c) for c in shm_abuse(peer, arena, shm_segment_bytes)]
                cases.append((plain, not_negotiated_shm(plain)))
                for sender, (name, frames, job) in cases:
                    sender.send(frames)
                    out.shm_cases.append((name, _ending(sender, job)))
            finally:
                sampler.stop()
                peer.close()
                plain.close()
                arena.close()
            out.shm_rss_peak = max(sampler.peak, out.shm_rss_before)
            out.shm_rss_after = backend.rss_bytes()
        out.tracebacks = backend.log_tail(10**7).count("Traceback")


def _ending(peer: RawPeer, job: str, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = peer.recv(0.5)
        if msg is not None and msg.job == job and msg.type in MsgType.FINAL_TYPES:
            code = msg.body.get("code", "")
            return f"{msg.type} {code}".strip()
    return "no reply"


def run_fuzz_bench(*, messages: int = 10_000, slow_frames: int = 2500,
                   produce_s: float = 0.002, clients: int = 8, real_jobs: bool = True,
                   takeover_attempts: int = 200, mix_timeout_s: float = 600.0,
                   big_frames: int = 24, big_frame_bytes: int = 64 << 20,
                   stall_s: float = 5.0, shm_segment_bytes: int = 200 << 20,
                   quiet: bool = False) -> FuzzResult:
    result = FuzzResult()
    with tempfile.TemporaryDirectory(prefix="facecast-fuzz-") as tmp:
        key_file, _ = ensure_key_file(Path(tmp) / "fuzz.key")
        key = load_key(key_file)
        # Debug logging: every dropped message is a line, so the unread pipe fills
        # within the first few hundred and stays full (the old server froze there).
        backend = BackendProcess(key_file=key_file, unread_output=True, verbose=True,
                                 extra_args=["--max-jobs-per-client", "4"])
        try:
            endpoint = backend.endpoint
            _warm_up(endpoint, key)
            time.sleep(0.5)
            result.rss_base = backend.rss_bytes()
            sampler = _RssSampler(backend)
            prober = _Prober(endpoint, key)
            sampler.start()
            prober.start()
            _flood_unsigned(endpoint, messages, result)
            _flood_signed(endpoint, key, messages, result)
            time.sleep(1.0)  # let the server work through what is queued
            result.info_ms = prober.take()
            result.streams.append(_takeover(endpoint, key, takeover_attempts, result))
            result.streams.append(_slow_reader(endpoint, key, slow_frames, produce_s))
            result.streams.append(_credit_zero_then_huge(endpoint, key, 500))
            result.info_ms += prober.take()
            result.rss_peak = sampler.peak
            _mix(endpoint, key, clients, real_jobs, result, prober, mix_timeout_s)
            prober.stop()
            sampler.stop()
            result.info_failures = prober.failures
            result.alive = backend.proc.poll() is None
        finally:
            result.stop_s = backend.stop(timeout=30)
            backend._dir.cleanup()
        _limits(key_file, key, result.limits, big_frames, big_frame_bytes, stall_s,
                shm_segment_bytes)
    if not quiet:
        print_fuzz_report(result, messages, real_jobs)
    return result


def print_fuzz_report(r: FuzzResult, messages: int, real_jobs: bool) -> None:
    ms = r.info_ms
    mix_ms = r.mix_info_ms
    mix = "render + animate" if real_jobs else "two synthetic_frames jobs"
    print("facecast bench fuzz: the server logs at debug level into a pipe nobody reads; "
          f"an info prober asks every 50 ms throughout ({len(ms) + len(mix_ms)} answers, "
          f"{r.info_failures} failures)")
    print("| check | result | target |\n|---|---|---|")
    print(f"| unsigned hostile messages | {r.unsigned_sent} sent | {messages} |")
    print(f"| signed hostile messages ({len(r.signed_classes)} classes) | {r.signed_sent} sent"
          f" | {messages} |")
    print(f"| sends that stalled 5 s (server not reading) | {r.send_stalls} | 0 |")
    print(f"| server alive throughout | {'yes' if r.alive else 'NO'} | yes |")
    print(f"| info latency during floods and streams, p50 / p99 | {_pct(ms, .5):.1f} / "
          f"{_pct(ms, .99):.1f} ms | p99 <= 100 ms |")
    print(f"| server RSS growth (after warm-up: {r.rss_base / 1e6:.0f} MB) | "
          f"{r.rss_growth_mb:+.1f} MB | <= 50 MB |")
    for s in r.streams:
        print(f"| {s.name} | {s.received}/{s.expected} frames, "
              f"{'in order' if s.in_order else 'OUT OF ORDER / foreign'}, finals "
              f"{s.finals} | all, 1 done |")
    print(f"| takeover attempts (HELLO + CANCEL with the victim's session id): victim's "
          f"messages the attacker got | {r.takeover_stolen} of {r.takeover_tried} attempts "
          "| 0 |")
    print(f"| frames lost, all streams | {r.frames_lost()} | 0 |")
    print(f"| {r.mix_clients} clients x ({mix}) + info: jobs done | {r.mix_jobs_done}/"
          f"{r.mix_jobs} (first to last client finished {r.mix_spread_s:.1f} s apart) "
          "| all, no starvation |")
    for failure in r.mix_failures:
        print(f"| a job of the mix ended with | {failure} | done |")
    print(f"| info latency during that mix, p50 / p99 | {_pct(mix_ms, .5):.1f} / "
          f"{_pct(mix_ms, .99):.1f} ms ({len(mix_ms)} answers) | p99 <= 100 ms |")
    print(f"| SIGTERM to exit | {r.stop_s:.2f} s | <= 5 s |")
    print_limits_report(r.limits)
    if ms:
        print(f"(info latency mean {statistics.mean(ms):.1f} ms; this machine's cores are "
              "shared with other work, so latencies include waiting for a core)")


def print_limits_report(lim: LimitsResult) -> None:
    print("\nbyte limits (a second backend, logging to a file):")
    print("| check | result | target |\n|---|---|---|")
    st = lim.stall
    if st is not None:
        print(f"| {st.frames} frames of {st.frame_mb:.0f} MB at credit 2^63, reader stops "
              f"after the first: server RSS before / peak while stalled | "
              f"{st.rss_before / 1e6:.0f} / {st.rss_stalled / 1e6:.0f} MB "
              f"({st.stalled_growth_mb:+.0f} MB) | <= +150 MB |")
        print(f"| ... then reads on: frames; server RSS peak over the whole stream | "
              f"{st.received}/{st.frames}, {'in order' if st.in_order else 'OUT OF ORDER'}, "
              f"finals {st.finals}; {st.rss_peak / 1e6:.0f} MB ({st.growth_mb:+.0f} MB) | "
              "all, 1 done; <= +150 MB |")
    if not lim.shm_cases:
        print("| bad shared-memory payloads | skipped: no /dev/shm fast path here | |")
    for case, ending in lim.shm_cases:
        print(f"| bad shared-memory payload: {case} | {ending} | error |")
    if lim.shm_cases:
        print(f"| server RSS before / peak / after those payloads | "
              f"{lim.shm_rss_before / 1e6:.0f} / {lim.shm_rss_peak / 1e6:.0f} / "
              f"{lim.shm_rss_after / 1e6:.0f} MB (peak {lim.shm_growth_mb:+.0f} MB) "
              "| <= +150 MB |")
    print(f"| tracebacks in the server log | {lim.tracebacks} | 0 |")
