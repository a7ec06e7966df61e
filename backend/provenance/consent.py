"""The consent record of a subject: what the person filmed agreed to, kept with the subject.

``facecast subject build`` refuses to start without a consent statement (``--consent
"…"`` or ``--consent-file``); ``facecast subject consent NAME`` records or replaces it
on an existing subject (the shipped default subject included). The record lives in the
subject's ``manifest.json`` under ``"consent"``: the statement, its SHA-256, when it was
recorded, and the source clip's name and SHA-256, so a render's credentials can name the
statement by hash and anyone holding the clip can check it is the one consented to.
A replaced record is kept under ``"consent_history"``, never dropped. Manifests written
before consent existed load as "consent: not recorded".

Facecast records what the user states; it cannot check that the statement is true.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared import __version__
from shared.errors import InputError

from ..atomic_file import write_atomic

MAX_STATEMENT_BYTES = 64 * 1024
NOT_RECORDED = "consent: not recorded"


@dataclass(frozen=True)
class Consent:
    statement: str
    sha256: str  # of the statement's UTF-8 bytes
    recorded: str  # UTC, ISO 8601
    source_clip: str | None  # file name of the footage the subject was built from
    source_sha256: str | None
    statement_file: str | None = None  # the file's name when it came from --consent-file
    recorded_with: str = f"facecast {__version__}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Consent:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in fields})

    @property
    def summary(self) -> str:
        """The statement's first line, at most 80 characters."""
        first = self.statement.strip().splitlines()[0] if self.statement.strip() else ""
        return first if len(first) <= 80 else first[:79] + "…"

    @property
    def line(self) -> str:
        """One line for listings and the add-on's panel."""
        return (f"consent statement ({self.recorded[:10]}, sha256 {self.sha256[:12]}): "
                f"{self.summary}")


def _clean(statement: str, origin: str) -> str:
    text = statement.replace("\r\n", "\n").strip()
    if not text:
        raise InputError(f"the consent statement {origin} is empty",
                         "write what the person filmed agreed to (who, what use, when)")
    if len(text.encode()) > MAX_STATEMENT_BYTES:
        raise InputError(f"the consent statement {origin} is larger than "
                         f"{MAX_STATEMENT_BYTES // 1024} KB",
                         "keep the statement itself in the record and the signed release "
                         "elsewhere; put its file name or hash in the statement")
    return text


def read_statement(text: str | None, file: str | Path | None) -> tuple[str, str | None]:
    """The statement from ``--consent`` or ``--consent-file`` (exactly one), cleaned;
    returns (statement, file name or None). Clear InputErrors for every bad case."""
    if (text is None) == (file is None):
        raise InputError("a consent statement is required" if text is None else
                         "both --consent and --consent-file were given",
                         'pass --consent "what the person filmed agreed to" or '
                         "--consent-file FILE (one of them)")
    if text is not None:
        return _clean(text, "given with --consent"), None
    path = Path(file).expanduser()  # type: ignore[arg-type]
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the consent file {path}: {exc.strerror or exc}",
                         "pass a readable text file with the consent statement") from exc
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"the consent file {path} is not UTF-8 text",
                         "save the statement as plain UTF-8 text (not PDF/Word)") from exc
    return _clean(decoded, f"in {path}"), path.name


def make_consent(statement: str, clip: str | Path | None, statement_file: str | None = None,
                 clip_sha256: str | None = None) -> Consent:
    """A record for ``statement`` about the footage ``clip`` (hashed here when it exists
    and ``clip_sha256`` is not given)."""
    name = Path(clip).name if clip is not None else None
    if clip_sha256 is None and clip is not None and Path(clip).is_file():
        from ..tracking.cache import file_hash

        clip_sha256 = file_hash(clip)
    return Consent(statement=statement,
                   sha256=hashlib.sha256(statement.encode()).hexdigest(),
                   recorded=datetime.now(UTC).isoformat(timespec="seconds"),
                   source_clip=name, source_sha256=clip_sha256,
                   statement_file=statement_file)


def consent_of(manifest: dict) -> Consent | None:
    """The subject's consent record, or None for manifests that have none."""
    d = manifest.get("consent")
    if not isinstance(d, dict) or not d.get("statement") or not d.get("sha256"):
        return None
    return Consent.from_dict(d)


def consent_line(manifest: dict) -> str:
    c = consent_of(manifest)
    return c.line if c is not None else NOT_RECORDED


def record_consent(subject_dir: Path, consent: Consent, replace: bool = False) -> dict:
    """Write ``consent`` into the subject's manifest (atomically); returns the manifest.

    An existing, different record is only replaced with ``replace`` and is then kept in
    ``consent_history``. The record must name the subject's own footage: a consent for
    another clip is refused.
    """
    path = Path(subject_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the subject manifest {path}: {exc}",
                         "pass a subject name or folder that `facecast subject list` "
                         "shows") from exc
    source = manifest.get("source") or {}
    if (consent.source_sha256 and source.get("sha256")
            and consent.source_sha256 != source["sha256"]):
        raise InputError(f"the consent names footage {consent.source_clip} "
                         f"(sha256 {consent.source_sha256[:12]}) but the subject was built "
                         f"from {source.get('clip')} (sha256 {source['sha256'][:12]})",
                         "record consent for the footage this subject was built from")
    if consent.source_sha256 is None and source.get("sha256"):
        consent = Consent(**{**consent.to_dict(), "source_clip": source.get("clip"),
                             "source_sha256": source["sha256"]})
    old = consent_of(manifest)
    if old is not None and old.sha256 != consent.sha256:
        if not replace:
            raise InputError(f"subject {manifest.get('name')!r} already has a different "
                             f"consent record ({old.line})",
                             "pass --replace to record the new one (the old one is kept "
                             "in the manifest's consent_history)")
        manifest.setdefault("consent_history", []).append(old.to_dict())
    if old is not None and old.sha256 == consent.sha256:
        return manifest  # the same statement: keep the original date
    manifest["consent"] = consent.to_dict()
    write_atomic(path, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    return manifest


def installed_subjects() -> list[tuple[str, Path, dict]]:
    """(name, folder, manifest) of every subject installed here: the user's subject
    folders first, then the built-in ones. Unreadable manifests are skipped."""
    from ..subject.store import BUILTIN_SUBJECTS, subject_roots

    folders = [d for r in subject_roots() if r.is_dir() for d in sorted(r.iterdir())]
    rows = []
    for d in [*folders, *BUILTIN_SUBJECTS.values()]:
        try:
            m = json.loads((d / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(m, dict):
            rows.append((str(m.get("name") or d.name), d, m))
    return rows
