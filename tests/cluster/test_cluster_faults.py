"""Render farm faults with real nodes: a local Ray cluster of a head (no CPUs, the
gateway's node) and two one-CPU worker nodes (``ray.cluster_utils``: separate raylets
on this machine). Losing a node re-renders its chunks on the other; losing every node
ends the job with a retryable error after the frames already sent, in order."""

from __future__ import annotations

import numpy as np
import pytest

from backend.cluster.runtime import ClusterConfig, active_cluster
from shared.errors import InputError
from shared.protocol import ErrorCode, MsgType
from tests.cluster_helpers import connect, gateway, landmarks, reference_frames, render_params

pytestmark = pytest.mark.timeout(240)
STORE = 80 * 2 ** 20  # object store per node (Ray's minimum is ~75 MiB)


@pytest.fixture(scope="module")
def nodes():
    ray = pytest.importorskip("ray", reason="the `cluster` extra (Ray) is not installed")
    from ray.cluster_utils import Cluster as LocalNodes

    cluster = LocalNodes(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": STORE, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1, object_store_memory=STORE) for _ in range(2)]
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def test_lost_nodes_lose_no_frame_then_the_job_ends_retryable(nodes, tmp_path) -> None:
    from shared.protocol.keys import ensure_key_file

    cluster, workers = nodes
    key, _ = ensure_key_file(tmp_path / "hmac.key")
    config = ClusterConfig(address="auto", actors=2, chunk_frames=3, actor_timeout_s=3.0)
    n = 400
    got, final, removed = [], None, 0
    with gateway(key, config) as server, connect(server, key) as bc:
        assert active_cluster().describe()["nodes"] == 3
        job = bc.client.submit("render", render_params(), [landmarks(n)], credit=4)
        while final is None:
            for e in bc.client.poll(20):
                if e.job == job and e.kind == MsgType.FRAME:
                    got.append(e)
                elif e.job == job and e.final:
                    final = e
            # First one node goes (its chunks re-run on the other), a few frames later
            # the other one: no render actor is left anywhere.
            if removed < 2 and len(got) >= 4 + 8 * removed:
                cluster.remove_node(workers[removed], allow_graceful=False)
                removed += 1
        info = bc.call("info").body["cluster"]
    assert removed == 2
    assert final.kind == MsgType.ERROR
    assert final.body["code"] == ErrorCode.UNAVAILABLE and final.body["retryable"] is True
    assert f"{len(got)} frames were sent" in final.body["message"]
    assert "frames already received are kept" in final.body["message"]
    assert 12 <= len(got) < n
    assert [f.body["index"] for f in got] == list(range(len(got)))  # in order, no twice
    for f, (rgba, depth) in zip(got, reference_frames(landmarks(len(got)),
                                                      request=landmarks(n)), strict=True):
        assert np.array_equal(f.arrays[0], rgba) and np.array_equal(f.arrays[1], depth)
    assert info["actors"] == 0


def test_a_cluster_without_room_for_an_actor_is_a_clear_start_error(nodes) -> None:
    from backend.cluster.runtime import Cluster

    # Every worker node is gone (previous test) or too small: one actor wanting 64 CPUs.
    with pytest.raises(InputError.__mro__[1]) as err:
        Cluster(ClusterConfig(address="auto", actors=1, cpus_per_actor=64,
                              actor_start_timeout_s=2))
    assert "no render actor could start on the cluster" in err.value.message
    assert "64 CPU" in err.value.message and err.value.retryable
