"""``facecast serve``: run the backend (loopback by default; --curve for remote hosts)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path

from backend.threads import add_threads_argument
from shared.protocol import DEFAULT_ADDRESS
from shared.protocol.constants import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_TOTAL_BYTES,
)

#: After the server stopped, how long the last log lines may take to drain before the
#: process exits anyway (stdout may be a pipe nobody reads).
EXIT_FLUSH_S = 1.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the render/animation backend",
                       description="Run the backend: a ZeroMQ ROUTER on loopback by default.")
    p.add_argument("--address", default=DEFAULT_ADDRESS,
                   help=f"ZeroMQ endpoint to bind (default {DEFAULT_ADDRESS}; port 0 picks one)")
    p.add_argument("--key-file", type=Path, default=None,
                   help="HMAC key file (created with mode 0600 if missing; default "
                        "~/.config/facecast/hmac.key or $FACECAST_HOME/hmac.key)")
    p.add_argument("--workers", type=int, default=2,
                   help="jobs computing at once (shared fairly between clients)")
    p.add_argument("--max-jobs-per-client", type=int, default=4)
    p.add_argument("--max-jobs", type=int, default=32,
                   help="jobs accepted at once, all clients together")
    p.add_argument("--client-timeout", type=float, default=10.0,
                   help="seconds of silence after which a client's jobs are cancelled")
    p.add_argument("--max-frame-bytes", type=int, default=DEFAULT_MAX_FRAME_BYTES,
                   help="largest single frame accepted (ZeroMQ MAXMSGSIZE; bigger cuts the peer)")
    p.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES,
                   help="most frames in one message")
    p.add_argument("--max-total-bytes", type=int, default=DEFAULT_MAX_TOTAL_BYTES,
                   help="largest message accepted, all frames together")
    p.add_argument("--no-shm", action="store_true",
                   help="never use the same-host shared-memory fast path")
    p.add_argument("--curve", type=Path, default=None, metavar="SERVER.key_secret",
                   help="enable CurveZMQ with this server secret key (for remote hosts)")
    p.add_argument("--curve-clients", type=Path, default=None, metavar="DIR",
                   help="folder of allowed client public keys (*.key) for --curve")
    p.add_argument("--log-file", type=Path, default=None,
                   help="also log to this file, rotated at --log-max-mb (3 old files kept)")
    p.add_argument("--log-max-mb", type=float, default=10.0,
                   help="size at which --log-file rotates (MB)")
    p.add_argument("--log-summary-s", type=float, default=10.0,
                   help="seconds between summary lines of dropped messages")
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
    from backend.atomic_file import write_atomic
    from backend.server.app import Server
    from backend.server.config import ServerConfig
    from backend.server.logs import route_std_streams, setup_server_logging
    from backend.threads import set_threads

    set_threads(args.threads)

    config = ServerConfig(address=args.address, key_file=args.key_file, workers=args.workers,
                          max_jobs_per_client=args.max_jobs_per_client,
                          max_jobs_total=args.max_jobs,
                          client_timeout_s=args.client_timeout,
                          max_frame_bytes=args.max_frame_bytes, max_frames=args.max_frames,
                          max_total_bytes=args.max_total_bytes, shm=not args.no_shm,
                          drop_log_interval_s=args.log_summary_s,
                          curve_secret_file=args.curve, curve_clients_dir=args.curve_clients,
                          cluster=cluster_config(args))
    if not 0 < args.log_max_mb < 1e6:
        from shared.errors import InputError

        raise InputError(f"--log-max-mb {args.log_max_mb} is out of range",
                         "give a size in MB, e.g. 10")
    server = Server(config)  # checks the options and the key file
    endpoint = server.bind()  # a port in use or a bad address is a one-line error
    handlers = setup_server_logging(logging.getLogger().level, args.log_file,
                                    max_bytes=int(args.log_max_mb * 1024 * 1024))
    server.install_signal_handlers()
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
        print(f"CurveZMQ: on; allowed clients from {config.curve_clients_dir}", flush=True)
    print(f"same-host fast path: {'offered' if server.shm else 'off'}", flush=True)
    if args.ready_file:
        write_atomic(args.ready_file, lambda f: f.write(endpoint.encode()))
    route_std_streams()  # from here on, nothing writes to a stdout that may be stuck
    try:
        server.serve_forever()
    finally:
        # stdout/stderr may be a pipe nobody reads: give the log a moment, then leave
        # without the interpreter's exit-time flushes, which would block on it.
        for handler in handlers:
            handler.flush_within(EXIT_FLUSH_S)
        _exit_soon()
    return 0


def _exit_soon() -> None:
    """Flush stdout/stderr for at most a second, then end the process."""
    done = threading.Event()

    def flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        done.set()

    threading.Thread(target=flush, daemon=True).start()
    done.wait(EXIT_FLUSH_S)
    exc = sys.exc_info()[1]
    os._exit(1 if exc is not None and not isinstance(exc, KeyboardInterrupt) else 0)
