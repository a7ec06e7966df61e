"""Joining a Ray cluster, and the one cluster this backend process serves with.

Addresses (``facecast serve --cluster ADDRESS``):

* ``auto`` — the Ray runtime already running in this process, else ``$RAY_ADDRESS``,
  else the cluster this machine joined with ``ray start``, else a private runtime
  started here with every core and a modest object store;
* ``local`` — always a private runtime started here (benchmarks, a single workstation);
* ``HOST:PORT`` — the head node's GCS address of a running cluster (``ray start --head``
  prints it; port 6379 by default).

An address nobody answers at fails within ``connect_timeout_s`` with a message, never a
hang; a missing Ray names the extra to install. A private runtime gets
``object_store_memory`` (256 MiB by default) instead of Ray's default of 30 % of RAM in
``/dev/shm``: the gateway keeps at most ``window * chunk_frames`` frames there. A
private runtime's processes die with the gateway, even one killed with SIGKILL
(``reaper.py``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import FacecastError

from . import reaper
from .pool import ActorPool, ActorSpec
from .scheduler import ClusterUnavailable, OrderedFrames, SchedulePolicy
from .subject_package import SubjectPackage

log = logging.getLogger("facecast.cluster")
INSTALL_HINT = ("install the `cluster` extra: pip install 'facecast[cluster]' (in a "
                "checkout: bash scripts/install.sh --dev, or .venv/bin/pip install -e "
                "'.[cluster]')")
PACKAGES_KEPT = 4  # subjects kept in the object store


@dataclass(frozen=True)
class ClusterConfig:
    address: str = "auto"
    actors: int | None = None  # None: one per GPU, else one per cpus_per_actor CPUs
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None  # None: 1 when the cluster has GPUs, else 0
    actor_memory: int | None = None  # bytes reserved per actor; bigger subjects are refused
    chunk_frames: int = 4
    window_chunks: int | None = None  # None: twice the actors
    max_attempts: int = 3
    actor_timeout_s: float = 60.0  # a job with no actor for this long: cluster gone
    connect_timeout_s: float = 10.0
    actor_start_timeout_s: float = 120.0
    # A private runtime started here (``auto`` without a cluster, ``local``):
    object_store_memory: int = 256 * 2 ** 20
    local_cpus: int | None = None  # logical CPUs (None: this machine's cores)
    local_gpus: int | None = None  # logical GPUs (None: Ray detects them)

    def validate(self) -> None:
        from shared.errors import InputError

        if self.actors is not None and self.actors < 1:
            raise InputError("--cluster-actors must be at least 1", "fix the option")
        if self.chunk_frames < 1:
            raise InputError("--cluster-chunk must be at least 1 frame", "fix the option")
        if self.actor_memory is not None and self.actor_memory <= 0:
            raise InputError("--actor-memory must be positive", "fix the option")


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise FacecastError("Ray is not installed, so this backend cannot serve a "
                            "cluster", INSTALL_HINT) from exc
    return ray


def _probe(address: str, timeout_s: float) -> None:
    """Fail fast, with a message, when nothing listens at ``HOST:PORT``."""
    if "://" in address:
        raise FacecastError(f"cluster address {address!r} is a Ray Client address",
                            "join the cluster as a node (`ray start --address HEAD:6379 "
                            "--num-cpus 0`) and serve with --cluster auto, or pass the "
                            "head's HOST:PORT")
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise FacecastError(f"cluster address {address!r} is not HOST:PORT, auto or local",
                            "pass the Ray head's address (e.g. 10.0.0.5:6379) or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterUnavailable(
            f"no Ray cluster answered at {address} within {timeout_s:.0f} s ({exc})",
            "start the head with `ray start --head --port PORT` there, check the "
            "address and the firewall, or use --cluster auto for this machine") from exc


class Cluster:
    """A joined Ray cluster with this gateway's render actors."""

    def __init__(self, config: ClusterConfig) -> None:
        config.validate()
        self.config = config
        ray = import_ray()
        self._started_here = False
        self._reaper = None
        self.address = self._connect(ray, config)
        try:
            resources = ray.cluster_resources()
            gpus = config.gpus_per_actor
            if gpus is None:
                gpus = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
            target = config.actors or (int(resources.get("GPU", 0) // gpus) if gpus else
                                       int(resources.get("CPU", 1) // config.cpus_per_actor))
            self.pool = ActorPool(ActorSpec(config.cpus_per_actor, gpus, config.actor_memory),
                                  max(1, target))
            ready = self.pool.wait_ready(config.actor_start_timeout_s)
            if ready == 0:
                raise ClusterUnavailable(
                    f"no render actor could start on the cluster at {self.address} within "
                    f"{config.actor_start_timeout_s:.0f} s (each asks for "
                    f"{config.cpus_per_actor:g} CPU, {gpus:g} GPU"
                    + (f", {config.actor_memory / 2 ** 20:.0f} MiB" if config.actor_memory
                       else "") + f"; the cluster has {_fmt(resources)})",
                    "add workers, or lower --cluster-actors / --actor-memory; Facecast must "
                    "be installed on every worker")
            if ready < self.pool.target:
                log.warning("%d of %d render actors started; the others wait for room",
                            ready, self.pool.target)
        except BaseException:
            self.close()
            raise
        self._packages: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        log.info("cluster %s: %s", self.address, self.pool.describe())

    def _connect(self, ray, config: ClusterConfig) -> str:
        address = config.address.strip()
        if address == "auto" and ray.is_initialized():
            return "this process's Ray runtime"
        if address == "auto" and os.environ.get("RAY_ADDRESS", "auto") != "auto":
            address = os.environ["RAY_ADDRESS"]  # checked like any head address below
        if address == "auto":
            try:
                ray.init(address="auto", logging_level=logging.WARNING, log_to_driver=False)
                return ray.get_runtime_context().gcs_address
            except ConnectionError:
                log.info("no running Ray cluster on this machine; starting a private one")
            address = "local"
        if address == "local":
            self._reaper = reaper.start()  # first: it watches what ray.init starts
            try:
                ray.init(num_cpus=config.local_cpus or os.cpu_count(),
                         num_gpus=config.local_gpus,
                         object_store_memory=config.object_store_memory,
                         include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False)
            except BaseException:
                reaper.goodbye(self._reaper)
                raise
            self._started_here = True
            return f"local ({ray.get_runtime_context().gcs_address})"
        _probe(address, config.connect_timeout_s)
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except Exception as exc:
            raise ClusterUnavailable(f"could not join the Ray cluster at {address}: {exc}",
                                     "check that the head runs the same Ray version "
                                     "(the `cluster` extra) and that ~/.ray/auth_token "
                                     "matches the head's") from exc
        return address

    # -- rendering --------------------------------------------------------------------
    def _package(self, folder: Path) -> tuple[str, Any]:
        """The subject's (content hash, object reference), put in the store once."""
        import ray

        package = SubjectPackage.read(folder)
        with self._lock:
            ref = self._packages.get(package.digest)
            if ref is None:
                try:
                    ref = ray.put(package)
                except ray.exceptions.ObjectStoreFullError as exc:
                    raise FacecastError(
                        f"subject {package.name!r} ({package.nbytes / 2 ** 20:.0f} MiB) does "
                        "not fit in the cluster's object store",
                        "start Ray with a larger --object-store-memory") from exc
                self._packages[package.digest] = ref
                while len(self._packages) > PACKAGES_KEPT:
                    self._packages.popitem(last=False)
            self._packages.move_to_end(package.digest)
        return package.digest, ref

    def render(self, folder: Path, views: list, cond, *, fp16: bool, payload,
               cancelled=lambda: False) -> OrderedFrames:
        """Frames of ``folder``'s subject at ``views`` with ``cond``, in order, carrying
        the watermark ``payload`` (``RenderStamp.payload``)."""
        c = self.config
        window = c.window_chunks or 2 * max(1, self.pool.target)
        policy = SchedulePolicy(c.chunk_frames, window, c.max_attempts, c.actor_timeout_s)
        return OrderedFrames(self.pool, self._package(folder), views, cond, fp16, policy,
                             cancelled, payload=payload)

    def describe(self) -> dict:
        import ray

        info = {"address": self.address, **self.pool.describe()}
        try:
            info["nodes"] = sum(1 for n in ray.nodes() if n.get("Alive"))
            info["resources"] = {k: v for k, v in ray.cluster_resources().items()
                                 if k in ("CPU", "GPU", "memory", "object_store_memory")}
        except Exception as exc:  # the cluster is unreachable right now
            info["error"] = str(exc)
        return info

    def close(self) -> None:
        import ray

        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()
        if self._started_here and ray.is_initialized():
            ray.shutdown()
        reaper.goodbye(self._reaper)
        self._reaper = None


def _fmt(resources: dict) -> str:
    keys = ("CPU", "GPU", "memory")
    return ", ".join(f"{resources[k] / 2 ** 20:.0f} MiB {k}" if k == "memory"
                     else f"{resources[k]:g} {k}" for k in keys if k in resources) or "nothing"


# -- the one cluster of this process (Ray's runtime is per process too) ---------------
_active: Cluster | None = None


def attach(config: ClusterConfig) -> Cluster:
    """Join the cluster and make it the one render jobs of this process use."""
    global _active
    if _active is not None:
        raise FacecastError("this backend process already serves a cluster",
                            "run one `facecast serve --cluster` per process")
    _active = Cluster(config)
    return _active


def detach() -> None:
    global _active
    cluster, _active = _active, None
    if cluster is not None:
        cluster.close()


def active_cluster() -> Cluster | None:
    return _active
