"""Server settings with safe defaults: loopback only, small per-client limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.cluster.runtime import ClusterConfig
from backend.server.executor import CLIENT_SEND_BUDGET
from shared.protocol.constants import (
    DEFAULT_ADDRESS,
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_TOTAL_BYTES,
)


@dataclass
class ServerConfig:
    address: str = DEFAULT_ADDRESS
    key_file: Path | None = None  # None: the default key file, created if missing
    #: Jobs computing at once (compute slots, shared fairly between clients).
    workers: int = 2
    max_jobs_per_client: int = 4
    #: Jobs accepted at once, all clients together (each has a thread; most of them
    #: wait for a slot or for their client). Cheap jobs (``info``) are not counted.
    max_jobs_total: int = 32
    #: Connected sessions; a HELLO beyond this evicts the longest-idle session without jobs.
    max_sessions: int = 256
    #: A client silent for this long is gone: its jobs are cancelled.
    client_timeout_s: float = 10.0
    #: Idle sessions (no jobs) are forgotten after this long.
    session_ttl_s: float = 600.0
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_frames: int = DEFAULT_MAX_FRAMES
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    #: Bytes of one client's messages the server may hold (queued, or in ZeroMQ and not
    #: yet written to its socket) before that client's jobs wait; one larger message
    #: still goes, alone.
    client_send_budget: int = CLIENT_SEND_BUDGET
    #: Same-host fast path: offered to clients that prove they share this host, with at
    #: most this many bytes of shared-memory segments per client.
    shm: bool = True
    shm_budget: int = 128 * 1024 * 1024
    #: Seconds between summaries of dropped messages in the log.
    drop_log_interval_s: float = 10.0
    #: CurveZMQ for remote hosts: the server's secret key file and a folder of the
    #: public keys of allowed clients.
    curve_secret_file: Path | None = None
    curve_clients_dir: Path | None = None
    #: Render jobs over Ray actors (``facecast serve --cluster``); None: in this process.
    cluster: ClusterConfig | None = None

    def validate(self) -> None:
        from shared.errors import InputError
        from shared.net import is_loopback
        from shared.protocol.address import check_address

        check_address(self.address, bind=True)
        if not is_loopback(self.address) and not self.curve_secret_file:
            raise InputError(f"{self.address} is not a loopback address and --curve is off",
                             "serve remote clients with --curve (see docs/SERVING.md, "
                             "'Remote GPU host'), or bind to 127.0.0.1")
        if self.curve_secret_file and not self.curve_clients_dir:
            raise InputError("--curve needs --curve-clients, a folder of the allowed "
                             "clients' public keys", "create one with `facecast keys curve "
                             "CLIENTNAME` on each client and copy its .key file there")
        for name in ("workers", "max_jobs_per_client", "max_jobs_total", "max_sessions",
                     "max_frames"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1",
                                 "fix the option")
        for name in ("client_timeout_s", "session_ttl_s", "drop_log_interval_s"):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                flag = name.removesuffix("_s").replace("_", "-")
                raise InputError(f"--{flag} must be a positive number of seconds, got "
                                 f"{value}", "fix the option")
        if self.cluster is not None:
            self.cluster.validate()
