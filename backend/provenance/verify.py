"""Check files for Facecast provenance: the invisible watermark and the C2PA credentials.

:func:`verify_paths` takes files and folders (folders: the images and videos inside,
recursively) and returns one :class:`FileReport` per file: whether the watermark was
found and what it says (subject and render fingerprints, matched against the subjects
installed here), whether a C2PA manifest is present and holds up, and whose face it is.
It never raises for a bad file: an unreadable or non-image file gets a report that says
so. Depth maps (16-bit single-channel PNGs) are recognised and not checked: they carry
no picture to mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import grid, presence
from .credentials import Credentials, describe, mime_of, read_credentials
from .payload import Payload
from .watermark import detect, detect_video

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}
MAX_VIDEO_FRAMES = 300

# Exit codes of `facecast verify`, answering "is this a Facecast render?" (worst wins):
# 0 a Facecast render (its watermark, or C2PA credentials trusted here that declare it
# synthetic); 1 no sign of Facecast; 2 unreadable; 3 damaged or tampered credentials.
EXIT_SYNTHETIC, EXIT_NO_SIGN, EXIT_UNREADABLE, EXIT_TAMPERED = 0, 1, 2, 3
EXIT_CODES = {EXIT_SYNTHETIC: "a Facecast render: its watermark or its trusted C2PA "
                              "credentials say synthetic",
              EXIT_NO_SIGN: "no sign of Facecast (no watermark, no trusted credentials)",
              EXIT_UNREADABLE: "could not be read",
              EXIT_TAMPERED: "C2PA credentials damaged, or no longer matching the file"}


@dataclass
class WatermarkResult:
    found: bool
    payload: Payload | None = None
    frames: int = 1  # frames checked (1 for an image)
    frames_found: int = 0  # frames where it was found alone
    frames_windowed: int = 0  # frames where it was found with its neighbours (video)
    presence_score: float = 0.0  # presence mark score (robust z; found at >= 5.5, >= 6.7 matched)
    grid_llr: float = 0.0  # the grid mark's log likelihood ratio (>= 16 found; small frames)

    def describe(self) -> str:
        if not self.found:
            if self.frames > 1:
                return f"no Facecast watermark in {self.frames} frames"
            return "no Facecast watermark"
        p = self.payload
        if p is None:
            mark = (f"grid mark, log-likelihood ratio {self.grid_llr:.0f}"
                    if self.grid_llr >= grid.FOUND_LLR else
                    f"presence mark, score {self.presence_score:.1f}")
            text = (f"Facecast watermark ({mark}); its payload (subject, render) is not "
                    "readable at this size or quality")
        else:
            text = f"Facecast watermark: subject {p.subject_hex}, render {p.render_hex}"
        if self.frames > 1:
            text += (f"; alone in {self.frames_found}/{self.frames} frames, with 1 s of "
                     f"neighbours in {self.frames_windowed}/{self.frames}")
        return text


@dataclass
class FileReport:
    path: str
    kind: str  # image | video | depth | unreadable
    error: str = ""
    watermark: WatermarkResult | None = None
    credentials: Credentials | None = None
    subject: str = ""  # whose face: from the credentials, or the matching local subject
    consent: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def synthetic(self) -> bool:
        """A Facecast render: the watermark is found, or credentials trusted here declare
        the file synthetic (a valid signature by an untrusted signer proves nothing)."""
        creds = self.credentials
        return (self.watermark is not None and self.watermark.found) or (
            creds is not None and creds.state == "trusted" and creds.synthetic)

    @property
    def exit_code(self) -> int:
        if self.credentials is not None and self.credentials.state in ("damaged", "invalid"):
            return EXIT_TAMPERED
        if self.kind == "unreadable":
            return EXIT_UNREADABLE
        if self.kind == "depth":
            return EXIT_SYNTHETIC  # not a picture: nothing to answer, nothing wrong
        return EXIT_SYNTHETIC if self.synthetic else EXIT_NO_SIGN

    def lines(self) -> list[str]:
        out = [self.path]
        if self.kind == "unreadable":
            out.append(f"  cannot check: {self.error}")
            if self.credentials is not None:
                out.append(f"  {describe(self.credentials)}")
            return out
        if self.kind == "depth":
            return [*out, "  depth map (16-bit, one channel): not a picture, not marked"]
        out.append(f"  {self.watermark.describe() if self.watermark else 'not checked'}")
        if self.credentials is not None:
            out.append(f"  {describe(self.credentials)}")
        if self.subject:
            out.append(f"  subject: {self.subject}" + (f"; {self.consent}" if self.consent
                                                       else ""))
        out += [f"  note: {n}" for n in self.notes]
        return out

    def to_dict(self) -> dict:
        wm = self.watermark
        return {"path": self.path, "kind": self.kind, "error": self.error,
                "watermark": None if wm is None else {
                    "found": wm.found, "frames": wm.frames,
                    "frames_found": wm.frames_found, "frames_windowed": wm.frames_windowed,
                    "subject": wm.payload.subject_hex if wm.payload else None,
                    "render": wm.payload.render_hex if wm.payload else None},
                "c2pa": None if self.credentials is None else {
                    "state": self.credentials.state, "detail": self.credentials.detail,
                    "signer": self.credentials.signer, "issuer": self.credentials.issuer,
                    "synthetic": self.credentials.synthetic,
                    "render": self.credentials.render,
                    "failures": self.credentials.failures},
                "subject": self.subject, "consent": self.consent, "notes": self.notes,
                "exit_code": self.exit_code}


def _files(paths: list[Path]) -> list[tuple[Path, bool]]:
    """(file, named explicitly) for files and the media inside folders."""
    out = []
    for p in paths:
        if p.is_dir():
            out += [(f, False) for f in sorted(p.rglob("*"))
                    if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)]
        else:
            out.append((p, True))
    return out


def _local_subjects() -> dict[int, tuple[str, str]]:
    """Subject fingerprint -> (name, consent line) for the subjects installed here."""
    from .consent import consent_line, installed_subjects
    from .stamp import subject_fingerprint

    found: dict[int, tuple[str, str]] = {}
    for name, _, manifest in installed_subjects():
        found.setdefault(subject_fingerprint(manifest), (name, consent_line(manifest)))
    return found


def _read_image(path: Path) -> tuple[np.ndarray | None, str]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I") and len(im.getbands()) == 1:
                return None, "depth"
            if im.mode not in ("RGB", "RGBA", "L"):
                im = im.convert("RGBA" if "A" in im.getbands() or im.mode == "P" else "RGB")
            return np.asarray(im), ""
    except UnidentifiedImageError:
        return None, "not an image or video Facecast can read"
    except (OSError, ValueError) as exc:
        return None, f"unreadable image ({exc})"


def _read_video(path: Path, max_frames: int) -> tuple[list[np.ndarray], int, str]:
    try:
        import av
    except ImportError:
        return [], 0, "reading video needs PyAV: pip install 'facecast[tracking]'"
    frames: list[np.ndarray] = []
    total = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return [], 0, "the file has no video stream"
            for frame in container.decode(video=0):
                total += 1
                if len(frames) < max_frames:
                    frames.append(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        if not frames:
            return [], 0, f"not a video Facecast can read ({str(exc).splitlines()[0]})"
    return frames, total, ""


_NO_MARK_NOTE = "the credentials declare a synthetic render but the pixels carry no watermark"
SEQUENCE_WINDOW = 25  # frames summed around each picture of a folder's sequence (1 s)


def read_image_marks(image: np.ndarray) -> WatermarkResult:
    """Both marks of one picture: found when either is; the payload when it decodes."""
    d = detect(image).detection
    p = presence.detect(image)
    g = grid.detect(image)
    found = d is not None or p.found or g.found
    return WatermarkResult(found, d.payload if d else None, 1, int(found), 0, p.score, g.llr)


def read_video_marks(frames: list[np.ndarray]) -> WatermarkResult:
    """Both marks of a frame sequence, each frame alone and with 1 s of neighbours; the
    payload from all frames together. Found when a frame is found with its neighbours
    (or the payload decodes from all frames)."""
    scan = detect_video(frames)
    alone, windowed = presence.detect_frames(frames)
    g_alone, g_windowed = grid.detect_frames(frames)
    hit = scan.combined
    found_alone = sum(s.found or p.found or g.found
                      for s, p, g in zip(scan.frames, alone, g_alone, strict=True))
    found_windowed = [w or p.found or g.found for w, p, g in
                      zip(scan.window_found, windowed, g_windowed, strict=True)]
    best = max((p.score for p in windowed), default=0.0)
    return WatermarkResult(hit is not None or any(found_windowed),
                           hit.payload if hit else None, len(frames), found_alone,
                           sum(found_windowed), best,
                           max((g.llr for g in g_windowed), default=0.0))


def verify_file(path: Path, *, explicit: bool = True, max_frames: int = MAX_VIDEO_FRAMES,
                trust_anchors: bytes | None = None,
                subjects: dict[int, tuple[str, str]] | None = None) -> FileReport:
    rep = FileReport(str(path), "image")
    if not path.is_file():
        rep.kind, rep.error = "unreadable", "no such file"
        return rep
    if path.suffix.lower() in VIDEO_SUFFIXES:
        rep.kind = "video"
        frames, total, err = _read_video(path, max_frames)
        if err:
            rep.kind, rep.error = "unreadable", err
        else:
            rep.watermark = read_video_marks(frames)
            if total > len(frames):
                rep.notes.append(f"checked the first {len(frames)} of {total} frames")
    else:
        image, err = _read_image(path)
        if err == "depth":
            rep.kind = "depth"
            return rep
        if image is None:
            rep.kind, rep.error = "unreadable", err + ("" if explicit else " (skipped)")
        else:
            rep.watermark = read_image_marks(image)
            if not rep.watermark.found and min(image.shape[:2]) < presence.MIN_SIDE:
                rep.notes.append(f"{image.shape[1]}x{image.shape[0]} is below "
                                 f"{presence.MIN_SIDE} px: too small to carry a readable "
                                 "watermark")
    mime = mime_of(path)
    if mime is not None:  # even when the pixels are unreadable: is the manifest damaged?
        try:
            creds = read_credentials(path, mime, trust_anchors)
        except OSError as exc:
            rep.notes.append(f"could not read the C2PA manifest: {exc}")
        else:
            if rep.kind != "unreadable" or creds.state in ("damaged", "invalid"):
                rep.credentials = creds
    if rep.kind == "unreadable":
        return rep
    _name_subject(rep, _local_subjects() if subjects is None else subjects)
    return rep


def _name_subject(rep: FileReport, subjects: dict[int, tuple[str, str]]) -> None:
    """Whose face: the credentials' subject, else the watermark's matched locally; and
    a note when the two disagree (a frame whose pixels came from another render)."""
    creds = rep.credentials
    wm = rep.watermark
    if creds is not None and creds.synthetic and creds.ok and not (wm and wm.found):
        rep.notes.append(_NO_MARK_NOTE + ("" if creds.state == "trusted" else
                                           " (and the signer is not trusted here)"))
    claimed = (creds.render.get("subject") or {}) if creds is not None and creds.ok else {}
    if claimed.get("name"):
        rep.subject = str(claimed["name"])
        c = (creds.render.get("consent") or {}) if creds else {}
        rep.consent = (f"consent statement ({str(c.get('date', ''))[:10]}, sha256 "
                       f"{str(c.get('statement_sha256', ''))[:12]}): {c.get('summary', '')}"
                       if c.get("recorded") else "consent: not recorded")
    if wm is not None and wm.found and wm.payload is not None:
        p = wm.payload
        mark = (creds.render.get("watermark") or {}) if creds is not None and creds.ok else {}
        if mark and (mark.get("subject"), mark.get("render")) != (p.subject_hex,
                                                                   p.render_hex):
            rep.notes.append(f"the watermark (subject {p.subject_hex}, render "
                             f"{p.render_hex}) does not match the credentials (subject "
                             f"{mark.get('subject')}, render {mark.get('render')})")
        if not rep.subject:
            local = subjects.get(p.subject)
            rep.subject = (f"{local[0]} (installed here, matched by fingerprint "
                           f"{p.subject_hex})" if local else
                           f"unknown here (fingerprint {p.subject_hex})")
            if local:
                rep.consent = local[1]


def verify_paths(paths: list[str | Path], *, max_frames: int = MAX_VIDEO_FRAMES,
                 trust_anchors: bytes | None = None) -> list[FileReport]:
    subjects = _local_subjects()
    reports = []
    for f, explicit in _files([Path(p) for p in paths]):
        reports.append(verify_file(f, explicit=explicit, max_frames=max_frames,
                                   trust_anchors=trust_anchors, subjects=subjects))
    read_as_sequences(reports)
    return reports


def read_as_sequences(reports: list[FileReport]) -> None:
    """Pictures of one folder with the same size are read as a frame sequence, as a video
    is (each with the ``SEQUENCE_WINDOW`` frames around it, in name order): a render's
    frames carry the same mark, so a frame too damaged to read alone (downscaled, a small
    face) is found with its neighbours. Updates the reports of pictures found only so."""
    groups: dict[tuple[str, tuple[int, ...]], list[tuple[FileReport, np.ndarray]]] = {}
    pictures = [r for r in reports if r.kind == "image" and r.watermark is not None]
    if all(r.watermark.found for r in pictures):
        return
    for rep in pictures:
        image, _ = _read_image(Path(rep.path))
        if image is not None:
            key = (str(Path(rep.path).parent), image.shape)
            groups.setdefault(key, []).append((rep, image))
    for members in groups.values():
        if len(members) < 2 or all(rep.watermark.found for rep, _ in members):
            continue
        members.sort(key=lambda m: m[0].path)
        images = [im for _, im in members]
        _, windowed = presence.detect_frames(images, SEQUENCE_WINDOW)
        _, g_windowed = grid.detect_frames(images, SEQUENCE_WINDOW)
        for (rep, _), p, g in zip(members, windowed, g_windowed, strict=True):
            if rep.watermark.found or not (p.found or g.found):
                continue
            rep.watermark.found = True
            rep.watermark.presence_score = p.score
            rep.watermark.grid_llr = g.llr
            rep.notes = [n for n in rep.notes if not n.startswith(_NO_MARK_NOTE)]
            rep.notes.append(f"found with its neighbouring frames: {len(members)} pictures "
                             "of this size in this folder read as a sequence")


def exit_code(reports: list[FileReport]) -> int:
    codes = [r.exit_code for r in reports]
    for code in (EXIT_TAMPERED, EXIT_UNREADABLE, EXIT_NO_SIGN):
        if code in codes:
            return code
    return EXIT_SYNTHETIC



def confirmed_claim(video: Path, frames: list[Path], payload: Payload) -> str:
    """What ``verify`` confirms about a render's outputs, in one line for a report: the
    MP4 and the frame files read exactly as ``facecast verify`` reads them, so a report
    claims only what a user's check would find."""
    reps = [verify_file(p, subjects={}) for p in [video, *frames]]
    vid, pics = reps[0], reps[1:]
    parts = []
    wm = vid.watermark
    if wm is not None and wm.found:
        parts.append(f"MP4: Facecast watermark found (alone in {wm.frames_found}/"
                     f"{wm.frames} frames, with 1 s of neighbours in {wm.frames_windowed}/"
                     f"{wm.frames}; payload " + ("matches" if wm.payload == payload else
                                                 "not read") + ")")
    else:
        parts.append(f"MP4: NO Facecast watermark found ({vid.error or 'not found'})")
    parts.append(f"C2PA {vid.credentials.state if vid.credentials else 'none'}")
    if pics:
        marked = sum(r.watermark is not None and r.watermark.found for r in pics)
        read = sum(r.watermark is not None and r.watermark.payload == payload for r in pics)
        states = sorted({r.credentials.state if r.credentials else "none" for r in pics})
        parts.append(f"frames checked {len(pics)}: watermark found in {marked}, payload "
                     f"read in {read}, C2PA {'/'.join(states)}")
    synthetic = all(r.exit_code == EXIT_SYNTHETIC for r in reps)
    verdict = "verify exit 0 (a Facecast render) on all" if synthetic else \
        f"verify exit {exit_code(reps)} ({EXIT_CODES[exit_code(reps)]})"
    return "; ".join(parts) + f"; {verdict}"
