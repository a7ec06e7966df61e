"""A subject's files as one content-hashed blob for Ray's object store.

Render actors may run on machines that do not share the gateway's filesystem, so the
gateway reads the subject folder once, names it by the BLAKE3 hash of its contents, and
puts it in the object store; an actor fetches it only for a hash it has not loaded yet.
The package holds the folder's top-level files (manifest, weights, plate, held-out pack);
``cache/`` and ``checkpoints/`` are training state and stay behind.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import blake3

from shared.errors import InputError


@dataclass(frozen=True)
class SubjectPackage:
    name: str  # the folder's name, for messages
    digest: str  # BLAKE3 of file names and contents (hex)
    files: dict[str, bytes]

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self.files.values())

    def file_size(self, name: str) -> int:
        return len(self.files.get(name, b""))

    @classmethod
    def read(cls, folder: Path) -> SubjectPackage:
        files: dict[str, bytes] = {}
        try:
            for path in sorted(folder.iterdir()):
                if path.is_file():
                    files[path.name] = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read subject folder {folder}: {exc}",
                             "check the subject's files and their permissions") from exc
        h = blake3.blake3()
        for name, data in files.items():
            h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little"))
            h.update(data)
        return cls(folder.name, h.hexdigest(), files)

    def unpack(self) -> tempfile.TemporaryDirectory:
        """Write the files into a fresh temporary folder (the caller cleans it up)."""
        tmp = tempfile.TemporaryDirectory(prefix=f"facecast-subject-{self.digest[:12]}-")
        root = Path(tmp.name)
        for name, data in self.files.items():
            (root / name).write_bytes(data)
        return tmp
