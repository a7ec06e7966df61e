"""Scale-out: render jobs spread over Ray actors behind the same ZeroMQ gateway.

``facecast serve --cluster ADDRESS`` keeps the gateway (sockets, sessions, credit) as it
is; only where the render job's frames come from changes. One concept per module:

* :mod:`.runtime` — joining a Ray cluster (``auto`` or a head address) with clear errors,
  and the one cluster this backend process serves with.
* :mod:`.subject_package` — a subject's files as one content-hashed blob, shipped to the
  actors through Ray's object store (no shared filesystem).
* :mod:`.actors` — the render actor: loads a subject once per content hash, renders chunks
  of frames; its only call into the renderer is :func:`.actors.render_frames`.
* :mod:`.pool` — the actors of this gateway: idle/busy, replacing lost ones.
* :mod:`.scheduler` — one job's frames in order: chunking, a bounded window of chunks in
  flight, retries after actor loss (exactly once), cancellation.

Ray is an optional dependency (the ``cluster`` extra): nothing here imports it at module
import time.
"""
