"""Server settings with safe defaults: loopback only, small per-client limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.cluster.runtime import ClusterConfig
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
    workers: int = 2
    max_jobs_per_client: int = 4
    max_jobs_total: int = 16
    #: A client silent for this long is gone: its jobs are cancelled.
    client_timeout_s: float = 10.0
    #: Idle sessions (no jobs) are forgotten after this long.
    session_ttl_s: float = 600.0
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_frames: int = DEFAULT_MAX_FRAMES
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    #: CurveZMQ for remote hosts: the server's secret key file and a folder of the
    #: public keys of allowed clients.
    curve_secret_file: Path | None = None
    curve_clients_dir: Path | None = None
    allow_remote: bool = False
    #: Render jobs over Ray actors (``facecast serve --cluster``); None: in this process.
    cluster: ClusterConfig | None = None

    def validate(self) -> None:
        from shared.errors import InputError
        from shared.net import is_loopback

        if not is_loopback(self.address) and not self.curve_secret_file:
            raise InputError(f"{self.address} is not a loopback address and --curve is off",
                             "serve remote clients with --curve (see README, 'Remote GPU "
                             "host'), or bind to 127.0.0.1")
        if self.workers < 1 or self.max_jobs_per_client < 1 or self.max_jobs_total < 1:
            raise InputError("worker and job limits must be at least 1", "fix the options")
        if self.cluster is not None:
            self.cluster.validate()
