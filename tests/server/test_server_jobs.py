"""A real ``facecast serve`` process on loopback: jobs, streams, credit, cancel, clients."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from backend.server.launcher import BackendProcess
from shared.errors import FacecastError
from shared.protocol import BlockingClient, Client, ErrorCode, MsgType, load_key
from tests.protocol_helpers import wait_for


def connect(backend, key_file, **kw) -> BlockingClient:
    return BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=5, **kw)


def finals(events) -> list:
    return [e for e in events if e.final]


def test_info_round_trip(backend, key_file) -> None:
    with connect(backend, key_file) as client:
        assert client.client.server["version"] == [1, 0]
        welcome = client.client.server
        body = client.call("info").body
        # Every job kind lists its optional features (possibly none), in WELCOME and info.
        assert set(welcome["features"]) == set(welcome["jobs"]) == set(body["features"])
        assert not client.client.supports("info", "no-such-feature")
        assert not client.client.supports("no-such-job", "text")
    assert body["device"] in ("cpu", "cuda")
    assert "synthetic_frames" in body["jobs"] and "info" in body["jobs"]


def test_stream_of_250_frames_arrives_intact_and_in_order(backend, key_file) -> None:
    with connect(backend, key_file) as client:
        events = list(client.stream("synthetic_frames", {"n_frames": 250, "shape": [8, 8, 4],
                                                     "dtype": "float16"}, credit=4))
    frames = [e for e in events if e.kind == MsgType.FRAME]
    assert events[0].kind == MsgType.ACCEPTED
    assert len(frames) == 250 and len(finals(events)) == 1 and events[-1].kind == MsgType.DONE
    for i, event in enumerate(frames):
        assert event.body["index"] == i
        assert event.arrays[0].dtype == np.float16 and event.arrays[0].shape == (8, 8, 4)
        assert np.all(event.arrays[0] == i % 251)
    assert any(e.kind == MsgType.PROGRESS for e in events)


def test_credit_limits_what_the_server_sends(backend, key_file) -> None:
    client = Client(backend.endpoint, key=load_key(key_file))
    client.connect()
    assert wait_for(lambda: bool(client.poll(20)) or client.state == "ready")
    job = client.submit("synthetic_frames", {"n_frames": 20}, credit=3, auto_credit=False)
    got: list = []
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        got += [e for e in client.poll(20) if e.kind == MsgType.FRAME]
    assert len(got) == 3, "server sent more frames than the credit allowed"
    client.grant(job, 5)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        got += [e for e in client.poll(20) if e.kind == MsgType.FRAME]
    assert len(got) == 8
    client.cancel(job)
    client.close()


def test_cancel_mid_stream_ends_with_exactly_one_cancelled(backend, key_file) -> None:
    with connect(backend, key_file) as bc:
        client = bc.client
        job = client.submit("synthetic_frames", {"n_frames": 10_000, "delay_s": 0.005})
        events: list = []
        while sum(e.kind == MsgType.FRAME for e in events) < 5:
            events += client.poll(20)
        client.cancel(job)
        client.cancel(job)  # idempotent
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            events += client.poll(20)
    assert [e.kind for e in finals(events)] == [MsgType.CANCELLED]
    assert sum(e.kind == MsgType.FRAME for e in events) < 10_000


def test_two_clients_stream_at_once(backend, key_file) -> None:
    with connect(backend, key_file) as a, connect(backend, key_file) as b:
        ja = a.client.submit("synthetic_frames", {"n_frames": 60, "shape": [3]})
        jb = b.client.submit("synthetic_frames", {"n_frames": 40, "shape": [5]})
        got = {ja: [], jb: []}
        done = set()
        end = time.monotonic() + 20
        while len(done) < 2 and time.monotonic() < end:
            for c in (a.client, b.client):
                for e in c.poll(10):
                    got[e.job].append(e)
                    if e.final:
                        done.add(e.job)
    assert sum(e.kind == MsgType.FRAME for e in got[ja]) == 60
    assert sum(e.kind == MsgType.FRAME for e in got[jb]) == 40
    assert all(e.arrays[0].shape == (3,) for e in got[ja] if e.kind == MsgType.FRAME)


def test_job_errors_are_final_replies_with_a_clear_message(backend, key_file) -> None:
    with connect(backend, key_file) as client:
        with pytest.raises(FacecastError, match="shape"):
            client.call("synthetic_frames", {"shape": "big"})
        with pytest.raises(FacecastError, match="no job 'nope'") as info:
            client.call("nope")
        assert info.value.code == ErrorCode.UNKNOWN_JOB_KIND
        events = list(client.stream("synthetic_frames", {"n_frames": 10, "fail_at": 4}))
    assert sum(e.kind == MsgType.FRAME for e in events) == 4
    assert [e.kind for e in finals(events)] == [MsgType.ERROR]
    assert "fail at frame 4" in events[-1].body["message"]


def test_busy_when_a_client_exceeds_its_job_limit(backend, key_file) -> None:
    with connect(backend, key_file) as bc:
        client = bc.client
        jobs = [client.submit("synthetic_frames", {"n_frames": 1000, "delay_s": 0.01})
                for _ in range(5)]
        events: list = []
        end = time.monotonic() + 3
        while time.monotonic() < end and not any(e.final for e in events):
            events += client.poll(20)
        busy = [e for e in events if e.final]
        assert len(busy) == 1 and busy[0].job == jobs[4]
        assert busy[0].body["code"] == ErrorCode.BUSY and busy[0].body["retryable"]
        for j in jobs:
            client.cancel(j)


def test_vanished_client_has_its_jobs_cancelled(key_file) -> None:
    from backend.server.launcher import BackendProcess

    with BackendProcess(key_file=key_file, extra_args=["--client-timeout", "2"]) as backend:
        client = Client(backend.endpoint, key=load_key(key_file))
        client.connect()
        client.submit("synthetic_frames", {"n_frames": 100_000, "delay_s": 0.01})
        assert wait_for(lambda: any(e.kind == MsgType.FRAME for e in client.poll(20)))
        client._sock.close(linger=0)  # vanish: no BYE, no more heartbeats
        client._sock = None
        assert wait_for(lambda: "cancelling 1 job(s)" in backend.log_tail(20000),
                        timeout_s=15), backend.log_tail()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_restart_is_seen_by_the_client(key_file) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    first = BackendProcess(key_file=key_file, address=address)
    client = Client(address, key=load_key(key_file), timeout_s=3, heartbeat_s=0.2)
    client.connect()
    assert wait_for(lambda: (client.poll(20), client.state)[1] == "ready")
    old_instance = client.server["instance"]
    job = client.submit("synthetic_frames", {"n_frames": 100_000, "delay_s": 0.01})
    assert wait_for(lambda: any(e.kind == MsgType.FRAME for e in client.poll(20)))
    first.kill()
    with BackendProcess(key_file=key_file, address=address) as second:
        events: list = []
        assert wait_for(lambda: (events.extend(client.poll(20)), client.state)[1] == "ready"
                        and any(e.final for e in events), timeout_s=15)
        lost = [e for e in events if e.final]
        assert [e.job for e in lost] == [job]
        assert lost[0].body["code"] in (ErrorCode.SERVER_RESTARTED, ErrorCode.UNAVAILABLE)
        assert lost[0].body["retryable"]
        assert client.server["instance"] != old_instance
        new_job = client.submit("synthetic_frames", {"n_frames": 2})
        done: list = []
        assert wait_for(lambda: (done.extend(e for e in client.poll(20) if e.final), done)[1])
        assert done[0].job == new_job and done[0].kind == MsgType.DONE
        client.close()
        second.stop()
    first.stop()


def test_backend_not_running_is_a_clear_error(key_file) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(FacecastError, match="no backend answered") as info:
        BlockingClient(address, key=load_key(key_file), timeout_s=1)
    assert "facecast serve" in info.value.message


def test_sigterm_ends_running_jobs_with_a_final_error(key_file) -> None:
    with BackendProcess(key_file=key_file) as backend:
        client = Client(backend.endpoint, key=load_key(key_file))
        client.connect()
        job = client.submit("synthetic_frames", {"n_frames": 100_000, "delay_s": 0.01})
        assert wait_for(lambda: any(e.kind == MsgType.FRAME for e in client.poll(20)))
        backend.proc.terminate()
        events: list = []
        assert wait_for(lambda: (events.extend(client.poll(20)), any(e.final for e in events))[1])
        final = [e for e in events if e.final]
        assert final[0].job == job and final[0].kind == MsgType.ERROR
        assert "shut down" in final[0].body["message"] and final[0].body["retryable"]
        assert backend.proc.wait(5) == 0
        assert "backend stopped" in backend.log_tail()
        client.close()
