"""``facecast serve``: run the backend (loopback by default; --curve for remote hosts)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.threads import add_threads_argument
from shared.protocol import DEFAULT_ADDRESS
from shared.protocol.constants import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_TOTAL_BYTES,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the render/animation backend",
                       description="Run the backend: a ZeroMQ ROUTER on loopback by default.")
    p.add_argument("--address", default=DEFAULT_ADDRESS,
                   help=f"ZeroMQ endpoint to bind (default {DEFAULT_ADDRESS}; port 0 picks one)")
    p.add_argument("--key-file", type=Path, default=None,
                   help="HMAC key file (created with mode 0600 if missing; default "
                        "~/.config/facecast/hmac.key or $FACECAST_HOME/hmac.key)")
    p.add_argument("--workers", type=int, default=2, help="jobs run at once")
    p.add_argument("--max-jobs-per-client", type=int, default=4)
    p.add_argument("--client-timeout", type=float, default=10.0,
                   help="seconds of silence after which a client's jobs are cancelled")
    p.add_argument("--max-frame-bytes", type=int, default=DEFAULT_MAX_FRAME_BYTES,
                   help="largest single frame accepted (ZeroMQ MAXMSGSIZE; bigger cuts the peer)")
    p.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES,
                   help="most frames in one message")
    p.add_argument("--max-total-bytes", type=int, default=DEFAULT_MAX_TOTAL_BYTES,
                   help="largest message accepted, all frames together")
    p.add_argument("--curve", type=Path, default=None, metavar="SERVER.key_secret",
                   help="enable CurveZMQ with this server secret key (for remote hosts)")
    p.add_argument("--curve-clients", type=Path, default=None, metavar="DIR",
                   help="folder of allowed client public keys (*.key) for --curve")
    p.add_argument("--ready-file", type=Path, default=None,
                   help="write the bound endpoint here once listening (for launchers)")
    c = p.add_argument_group("render farm (needs the `cluster` extra: Ray)")
    c.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="spread render jobs over Ray actors: auto (this machine's Ray, or a "
                        "private one), local (always a private one) or the head's HOST:PORT")
    c.add_argument("--cluster-actors", type=int, default=None, metavar="N",
                   help="render actors (default: one per GPU, else one per CPU core)")
    c.add_argument("--cluster-chunk", type=int, default=4, metavar="FRAMES",
                   help="frames per chunk sent to one actor (default 4)")
    c.add_argument("--actor-memory", type=int, default=None, metavar="MIB",
                   help="memory each actor reserves; subjects needing more are refused")
    add_threads_argument(p)
    p.set_defaults(func=run)


def cluster_config(args: argparse.Namespace):
    """The ``--cluster*`` options as a ClusterConfig, or None without ``--cluster``."""
    if not args.cluster:
        return None
    from backend.cluster.runtime import ClusterConfig

    return ClusterConfig(address=args.cluster, actors=args.cluster_actors,
                         chunk_frames=args.cluster_chunk,
                         actor_memory=args.actor_memory * 2 ** 20 if args.actor_memory
                         else None)


def run(args: argparse.Namespace) -> int:
    from backend.server.app import run_server
    from backend.server.config import ServerConfig
    from backend.threads import set_threads

    set_threads(args.threads)

    config = ServerConfig(address=args.address, key_file=args.key_file, workers=args.workers,
                          max_jobs_per_client=args.max_jobs_per_client,
                          client_timeout_s=args.client_timeout,
                          max_frame_bytes=args.max_frame_bytes, max_frames=args.max_frames,
                          max_total_bytes=args.max_total_bytes,
                          curve_secret_file=args.curve, curve_clients_dir=args.curve_clients,
                          cluster=cluster_config(args))

    def ready(server, endpoint: str) -> None:
        made = " (new)" if server.key_created else ""
        print(f"facecast backend listening on {endpoint}", flush=True)
        print(f"key file: {server.key_path}{made}", flush=True)
        if config.cluster is not None:
            from backend.cluster.runtime import active_cluster

            cluster = active_cluster()
            if cluster is not None:
                info = cluster.describe()
                print(f"render farm: {info['actors']} actors ({info['devices']}) on "
                      f"{cluster.address}", flush=True)
        if config.curve_secret_file:
            print("CurveZMQ: on; allowed clients from "
                  f"{config.curve_clients_dir}", flush=True)
        if args.ready_file:
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(endpoint)
            tmp.replace(args.ready_file)

    run_server(config, ready=ready)
    print("facecast backend stopped", file=sys.stderr)
    return 0
