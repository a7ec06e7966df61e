"""The provenance of one render: whose face, under what consent, which render.

A :class:`RenderStamp` is made once per render (CLI ``render``, the ``render`` job) from
the subject's manifest and the render's inputs. Its :attr:`~RenderStamp.payload` goes
into every frame's invisible watermark (16-bit fingerprints of the subject and of the
render); its :meth:`~RenderStamp.assertion` goes into the C2PA manifest of every file
written (the full hashes, the consent record), so a frame's pixels and its credentials
can be checked against each other, and a frame whose metadata was stripped still names
its subject and render by fingerprint.

The render id is a hash of the subject and of what the renderer is given (the camera
views and the conditioning after retargeting), not of the clock or of how the request
was spelled: the same render from the CLI, the job, the demo or the cluster gets the same
id, and renders the same, bit for bit, marks included.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from shared import __version__

from .consent import NOT_RECORDED, Consent, consent_of
from .payload import Payload, fingerprint


def subject_key(manifest: dict) -> str:
    """What identifies a subject: its name and the hash of the footage it was built from."""
    source = manifest.get("source") or {}
    return f"{manifest.get('name', '')}:{source.get('sha256') or ''}"


def subject_fingerprint(manifest: dict) -> int:
    return fingerprint(subject_key(manifest))


def render_id(manifest: dict, *inputs: Any) -> str:
    """SHA-256 (hex) of the subject key and the render's inputs: arrays, dataclasses (a
    ``CameraView``, a ``Conditioning``) and lists of them field by field, other values
    as JSON."""
    h = hashlib.sha256(subject_key(manifest).encode())
    for x in inputs:
        _feed(h, x)
    return h.hexdigest()


def _feed(h: Any, x: Any) -> None:
    if isinstance(x, np.ndarray):
        a = np.ascontiguousarray(x)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    elif dataclasses.is_dataclass(x) and not isinstance(x, type):
        h.update(type(x).__name__.encode())
        for f in dataclasses.fields(x):
            h.update(f.name.encode())
            _feed(h, getattr(x, f.name))
    elif isinstance(x, list | tuple):
        h.update(f"[{len(x)}".encode())
        for item in x:
            _feed(h, item)
    elif isinstance(x, bytes | bytearray):
        h.update(bytes(x))
    else:
        h.update(json.dumps(x, sort_keys=True, default=str).encode())


@dataclass(frozen=True)
class RenderStamp:
    subject_name: str
    subject_key: str
    render_id: str
    consent: Consent | None
    tool: str = f"Facecast {__version__}"

    @classmethod
    def for_render(cls, manifest: dict, *inputs: Any) -> RenderStamp:
        return cls(str(manifest.get("name", "")), subject_key(manifest),
                   render_id(manifest, *inputs), consent_of(manifest))

    @property
    def consent_line(self) -> str:
        return self.consent.line if self.consent is not None else NOT_RECORDED

    @property
    def payload(self) -> Payload:
        return Payload(fingerprint(self.subject_key), fingerprint(self.render_id))

    def assertion(self) -> dict:
        """The ``org.facecast.render`` C2PA assertion."""
        c = self.consent
        consent = ({"recorded": True, "statement_sha256": c.sha256, "date": c.recorded,
                    "source_clip": c.source_clip, "source_sha256": c.source_sha256,
                    "summary": c.summary}
                   if c is not None else {"recorded": False})
        p = self.payload
        return {"subject": {"name": self.subject_name,
                            "key_sha256": hashlib.sha256(self.subject_key.encode()
                                                         ).hexdigest(),
                            "fingerprint": p.subject_hex},
                "consent": consent,
                "render": {"id": self.render_id, "fingerprint": p.render_hex},
                "watermark": {"scheme": "facecast-dct-v1+presence-v2", "version": p.version,
                              "subject": p.subject_hex, "render": p.render_hex},
                "tool": self.tool}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["consent"] = None if self.consent is None else self.consent.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RenderStamp:
        consent = d.get("consent")
        return cls(d["subject_name"], d["subject_key"], d["render_id"],
                   None if not consent else Consent.from_dict(consent),
                   d.get("tool", f"Facecast {__version__}"))
