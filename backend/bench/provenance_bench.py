"""``facecast bench provenance``: does the watermark survive where users take frames,
what does it cost, does it ever fire on real footage, and what do the C2PA credentials
cost? Every row is measured for the current scheme (payload mark + presence mark, and the
grid mark in frames under 160 px, read as ``facecast verify`` reads it) beside the old
one (the payload mark alone, its own detector) and, for stills, the previous round's
(payload + presence + grid marks, the presence mark at its previous amplitude and read
without the matched filter) from the same frames of the same run.

Frames: the default subject rendered with the conditioning of its held-out pack (the
first ``--frames`` frames of d6's last 10 %, each ~4 source frames apart) through the
renderer's own ``render_sequence``, unmarked, then marked exactly as the renderer does
(``mark_frame``): stills from the demo's front camera at 96^2, 128^2, 256^2 and 512^2
(the add-on renders any size; 64 px is the smallest that carries a readable mark), and
for video the landmarks interpolated 4x (smooth motion, as an animation has) at 256^2
(the demo) and 128^2 (``demo --quick``). Every row has its baseline: the same unmarked
frames through the same steps (a detector that fires on them is broken).

Stills are composited over a real plate (frames of d9, a room), then: JPEG q50; a 50 %
and a 25 % resize (bicubic; the 25 % one also with PIL's box, Lanczos and bilinear
filters and OpenCV's area, bicubic and Lanczos); a 2 degree rotation (bicubic, same
size); a 10 % crop (the centre 80 %); +20 % brightness. Videos are the demo's MP4 as
the demo writes it (the render over its flat background beside the landmark preview,
H.264 CRF 20 veryfast), then that MP4 re-encoded by a user (x264 CRF 23 and CRF 28,
preset medium). "With neighbours" counts a frame as found when it, or the sum of the
25 frames around it (1 s), is found: the marks are the same in every frame of a render.

False positives: every frame of every real clip in ../shared/data/clips at its own size,
and brought to 128 px (then JPEG q50: the grid mark's ground) and to 64 px, read as
verify reads a picture (the payload detector, ten times slower, on
``--fp-frames`` of them spread evenly; 0: all), and each clip read as verify reads a
video. Cost: PSNR of marked vs unmarked (subject
pixels), held-out PSNR against the real frames with and without the mark (source
framing, over the plate), CPU time of ``mark_frame`` per frame on one thread; C2PA: PNG
encoding, signing and reading per frame, and signing an MP4.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

from ..motion.data import SHARED_DATA
from ..nerf.pipeline import Conditioning, render_sequence
from ..provenance import grid, presence
from ..provenance.credentials import Signer, encode_png, read_credentials, sign_video
from ..provenance.stamp import RenderStamp
from ..provenance.verify import read_image_marks, read_video_marks
from ..provenance.watermark import detect, detect_video, mark_frame
from ..subject.conditioning import render_conditioning
from ..subject.framing import front_camera
from ..subject.prepare import SubjectData
from ..subject.store import load_subject

SIZES = (96, 128, 256, 512)
DEMO_BACKGROUND = np.array([38, 40, 48], np.float32)  # backend.demo.run.BACKGROUND


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def _over(rgba: np.ndarray, plate: np.ndarray) -> np.ndarray:
    from PIL import Image

    if plate.ndim == 3 and plate.shape[:2] != rgba.shape[:2]:
        plate = np.asarray(Image.fromarray(plate).resize(rgba.shape[1::-1]))
    a = rgba[..., 3:].astype(np.float32) / 255.0
    return (rgba[..., :3] * a + plate.astype(np.float32) * (1 - a) + 0.5).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int = 50) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _resize(img: np.ndarray, factor: float, resample: str = "BICUBIC") -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((round(w * factor), round(h * factor)),
                                                  Image.Resampling[resample]))


def _cv_resize(interpolation: str):
    def resize(img: np.ndarray, factor: float) -> np.ndarray:
        import cv2

        h, w = img.shape[:2]
        return cv2.resize(img, (round(w * factor), round(h * factor)),
                          interpolation=getattr(cv2, interpolation))
    return resize


# The other resamplers users shrink pictures with (PIL's bicubic and box have their rows).
_QUARTER = {
    "PIL Lanczos": lambda img, f: _resize(img, f, "LANCZOS"),
    "PIL bilinear": lambda img, f: _resize(img, f, "BILINEAR"),
    "OpenCV area": _cv_resize("INTER_AREA"),
    "OpenCV bicubic": _cv_resize("INTER_CUBIC"),
    "OpenCV Lanczos": _cv_resize("INTER_LANCZOS4"),
}


def _rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).rotate(degrees, Image.Resampling.BICUBIC))


def _crop(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return img[h // 10: h - h // 10, w // 10: w - w // 10]


def _bright(img: np.ndarray) -> np.ndarray:
    return np.clip(img.astype(np.float32) * 1.2 + 0.5, 0, 255).astype(np.uint8)


def _h264(frames: list[np.ndarray], crf: int, preset: str = "medium") -> list[np.ndarray]:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25)
        s.pix_fmt, s.width, s.height = "yuv420p", frames[0].shape[1], frames[0].shape[0]
        s.options = {"crf": str(crf), "preset": preset}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    buf.seek(0)
    with av.open(buf) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _conditioning(subject, pack: SubjectData, framing: str, size: int, smooth: bool):
    from shared.camera import CameraView, camera_from_dict, camera_views

    if framing == "source":  # the footage's own camera: head poses are head -> camera
        h, w = pack.frames.shape[1:3]
        k = np.asarray(pack.k, np.float64).copy()
        if size != h:  # the same camera at another resolution
            k[:2] *= size / h
            h, w = size, round(w * size / h)
        view = CameraView(k, np.eye(4), w, h, 0.01, 100.0)
        cond = Conditioning(np.asarray(pack.landmarks, np.float32),
                            None if pack.blendshapes is None else
                            np.asarray(pack.blendshapes, np.float32),
                            np.asarray(pack.poses, np.float64), pack.body())
        return [view] * len(pack.landmarks), cond, np.asarray(pack.landmarks)
    lm = np.asarray(pack.landmarks, np.float32)
    if smooth:  # interpolated 4x into a smooth motion
        steps = np.arange(4) / 4
        lm = np.concatenate([a[None] * (1 - t) + b[None] * t for a, b in pairwise(lm)
                             for t in steps]).astype(np.float32)
    cond = render_conditioning({"landmarks": lm}, subject.manifest)
    cam, mw = camera_from_dict(front_camera(subject.manifest, size))
    return camera_views(cam, mw, len(cond)), cond, lm


def _render(subject, pack: SubjectData, framing: str, size: int = 256,
            smooth: bool = False) -> tuple[list[np.ndarray], np.ndarray, float]:
    """Unmarked RGBA uint8 renders through the renderer's own ``render_sequence``
    (raw frames: the render service would mark them), their landmarks, and the
    seconds per frame."""
    views, cond, lm = _conditioning(subject, pack, framing, size, smooth)
    t = time.perf_counter()
    frames = [rgba for _, rgba, _ in render_sequence(subject.model, subject.grid, views, cond)]
    return frames, lm, (time.perf_counter() - t) / max(1, len(frames))


def _rate(hits) -> str:
    hits = list(hits)
    return f"{100.0 * sum(hits) / max(1, len(hits)):.0f} %"


def _previous_found(image: np.ndarray) -> bool:
    """The previous round's reading: the payload, the grid mark, or the presence mark
    read with the plain fold only (no matched filter for shrunk pictures)."""
    if detect(image).found or grid.detect(image).found:
        return True
    return presence.judge(presence.folded_views(image, matched=False)).found


def _previous_video(frames: list[np.ndarray]) -> tuple[list[bool], list[bool]]:
    """The previous round's reading of a video, per frame alone and with 1 s of
    neighbours: the payload, the grid mark, or the presence mark without the matched
    filter."""
    scan = detect_video(frames)
    p_alone, p_windowed = presence.detect_frames(frames, matched=False)
    g_alone, g_windowed = grid.detect_frames(frames)
    alone = [s.found or p.found or g.found
             for s, p, g in zip(scan.frames, p_alone, g_alone, strict=True)]
    windowed = [w or p.found or g.found
                for w, p, g in zip(scan.window_found, p_windowed, g_windowed, strict=True)]
    return alone, windowed


class _Schemes:
    """The old, previous and new scheme's marks and verdicts on the same frames."""

    def __init__(self, payload) -> None:
        self.payload = payload

    def old(self, frame: np.ndarray) -> np.ndarray:
        return mark_frame(frame, self.payload, with_presence=False)

    def previous(self, frame: np.ndarray) -> np.ndarray:
        """The scheme before this one: the presence mark at its previous amplitude (3.5
        levels RMS before resizing to the frame, whatever the frame's size)."""
        return mark_frame(frame, self.payload, previous=True)

    def new(self, frame: np.ndarray) -> np.ndarray:
        return mark_frame(frame, self.payload)

    def still_row(self, label: str, unmarked, attack) -> str:
        old = [attack(self.old(u), i) for i, u in enumerate(unmarked)]
        prev = [attack(self.previous(u), i) for i, u in enumerate(unmarked)]
        new = [attack(self.new(u), i) for i, u in enumerate(unmarked)]
        base = [attack(u, i) for i, u in enumerate(unmarked)]
        d_old = [detect(x).detection for x in old]
        r_new = [read_image_marks(x) for x in new]
        r_base = [read_image_marks(x) for x in base]
        return (f"| {label} | {len(unmarked)} | "
                f"{_rate(d is not None and d.payload == self.payload for d in d_old)} | "
                f"{_rate(_previous_found(x) for x in prev)} | "
                f"**{_rate(r.found for r in r_new)}** | "
                f"{_rate(r.payload == self.payload for r in r_new)} | "
                f"{min(r.presence_score for r in r_new):.1f} | "
                f"{min(r.grid_llr for r in r_new):.0f} | "
                f"{_rate(r.found for r in r_base)} |")

    def video_rows(self, label: str, old: list[np.ndarray], prev: list[np.ndarray],
                   new: list[np.ndarray], base: list[np.ndarray]) -> str:
        s_old = detect_video(old)
        p_alone, p_windowed = _previous_video(prev)
        ok_old = s_old.combined is not None and s_old.combined.payload == self.payload
        old_alone = [s.found and s.detection.payload == self.payload for s in s_old.frames]
        r_new = read_video_marks(new)
        r_base = read_video_marks(base)
        n = len(new)
        return (f"| {label} | {n} | {_rate(old_alone)} / "
                f"{_rate(s_old.window_found) if ok_old else '0 %'} | "
                f"{_rate(p_alone)} / {_rate(p_windowed)} | "
                f"**{100 * r_new.frames_found / n:.0f} % / "
                f"{100 * r_new.frames_windowed / n:.0f} %** | "
                f"{'yes' if r_new.payload == self.payload else 'no'} | "
                f"{100 * r_base.frames_found / n:.0f} % / "
                f"{100 * r_base.frames_windowed / n:.0f} % |")


def _demo_layout(rgba: list[np.ndarray], lm: np.ndarray) -> list[np.ndarray]:
    """The demo MP4's picture: the render over its flat background, beside the preview."""
    from ..media.face_preview import FacePreview

    preview = FacePreview(rgba[0].shape[0])
    return [np.concatenate([_over(f, DEMO_BACKGROUND), preview.render(m)], axis=1)
            for f, m in zip(rgba, lm, strict=True)]


def _demo_mp4(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Through the demo's own writer (``write_mp4``, CRF 20 veryfast), decoded."""
    from ..media.decode import read_video
    from ..media.mp4 import write_mp4

    with tempfile.TemporaryDirectory() as tmp:
        path = write_mp4(Path(tmp) / "demo.mp4", frames, 25)
        return list(read_video(path).frames)


def _plates(data: Path, n: int) -> list[np.ndarray]:
    from ..media.decode import read_video

    return list(read_video(data / "clips" / "d9.mp4", max_frames=n, stride=7).frames)


def false_positives(data: Path, payload_frames: int | None = None) -> list[str]:
    """Every frame of every real clip at its own size: the presence mark read as verify
    reads a picture, and each clip as verify reads a video (1 s of neighbours); the
    payload mark's detector (the old scheme's, and the other half of verify's reading:
    ten times slower) on every frame, or on ``payload_frames`` spread evenly."""
    from ..media.decode import iter_frames, probe_video

    clips = sorted((data / "clips").glob("*.mp4"))
    total = sum(probe_video(c).n_frames or 0 for c in clips)
    stride = 1 if not payload_frames else max(1, total // payload_frames)
    rows, t = [], time.perf_counter()
    sums = {"frames": 0, "presence": 0, "payload": 0, "checked": 0, "windows": 0,
            "small": 0, "small_windows": 0, "tiny": 0, "best": -np.inf, "grid": -np.inf}
    for clip in clips:
        frames = [f for _, f in iter_frames(clip)]
        _, windowed = presence.detect_frames(frames)
        full = [presence.detect(f) for f in frames]  # every hypothesis, as verify
        old = [detect(f).found for f in frames[::stride]]
        best = max(p.score for p in full)
        h, w = frames[0].shape[:2]
        # The small marks' own ground: the frame brought to 128 px (JPEG q50) and 64 px.
        small = [_jpeg(_resize(f, 128 / min(h, w))) for f in frames]
        r_small = [read_image_marks(f) for f in small]
        small_seq = read_video_marks(small)
        tiny = [read_image_marks(_resize(f, 64 / min(h, w))).found for f in frames]
        row = {"frames": len(frames), "presence": sum(p.found for p in full),
               "payload": sum(old), "checked": len(old),
               "windows": sum(p.found for p in windowed),
               "small": sum(r.found for r in r_small), "small_windows": small_seq.frames_windowed,
               "tiny": sum(tiny), "best": best, "grid": max(r.grid_llr for r in r_small)}
        rows.append(f"| {clip.stem} ({w}x{h}) | {len(frames)} | {row['presence']} | "
                    f"{row['payload']} of {len(old)} | {row['windows']}/{len(windowed)} | "
                    f"{row['small']} / {row['small_windows']} | {row['tiny']} | "
                    f"{best:.1f} | {row['grid']:.1f} |")
        for k, v in row.items():
            sums[k] = max(sums[k], v) if k in ("best", "grid") else sums[k] + v
        print(rows[-1], flush=True)
    secs = time.perf_counter() - t
    rows.append(f"| **all {len(clips)} clips** | {sums['frames']} of {total} | "
                f"**{sums['presence']}** | **{sums['payload']}** of {sums['checked']} | "
                f"**{sums['windows']}**/{sums['frames']} | **{sums['small']}** / "
                f"**{sums['small_windows']}** | **{sums['tiny']}** | {sums['best']:.1f} (found "
                f"at ≥ {presence.ALIGNED_Z}) | {sums['grid']:.1f} (found at ≥ "
                f"{grid.FOUND_LLR:.0f}) |")
    rows.append(f"| time | {secs:.0f} s | | | | | | | |")
    return rows


def run_provenance_bench(frames: int = 12, fp_frames: int | None = 400,
                         data: Path | None = None) -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    data = Path(data) if data is not None else SHARED_DATA
    if not (data / "clips").is_dir():
        raise SystemExit(f"facecast bench provenance: the real clips are not in {data}/clips "
                         "(they live in ../shared/data beside the checkout; or pass --data)")
    subject = load_subject("default")
    pack = SubjectData.load(subject.folder / "heldout.npz")
    pack = pack.subset(list(range(min(frames, len(pack.frames)))))
    stamp = RenderStamp.for_render(subject.manifest, "bench provenance")
    payload = stamp.payload
    schemes = _Schemes(payload)
    plates = _plates(data, len(pack.frames))
    print(f"# facecast bench provenance — {len(pack.frames)} held-out frames of subject "
          f"'default', payload subject {payload.subject_hex} render {payload.render_hex}")
    print("\n## Stills (found with the right payload; baseline: the same frames unmarked, "
          "read as verify reads them)\n")
    print("| frames | n | old scheme (payload alone) | "
          "previous round (presence + payload + grid) | "
          "**new: found** | new: payload read | "
          "new: weakest presence score (≥ 5.5; 6.7 matched, shrunk) | "
          "new: weakest grid score (≥ 16; under 160 px) | unmarked baseline (new) |")
    print("|---|---|---|---|---|---|---|---|---|")
    stills, render_s = {}, {}
    for size in SIZES:
        stills[size], _, render_s[size] = _render(subject, pack, "demo", size)

    def plated(fn):
        return lambda x, i: fn(_over(x, plates[i % len(plates)]))

    rows = []
    for size in SIZES:
        rows += [(f"{size}² RGBA as rendered", stills[size], lambda x, i: x),
                 (f"{size}² over a real plate", stills[size], plated(lambda x: x))]
    rows += [("128² over a plate, JPEG q50", stills[128], plated(_jpeg)),
             ("256² over a plate, JPEG q50", stills[256], plated(_jpeg)),
             ("256² over a plate, resized 50 %", stills[256],
              plated(lambda x: _resize(x, 0.5))),
             ("256² over a plate, resized 25 % (64²)", stills[256],
              plated(lambda x: _resize(x, 0.25))),
             ("256² over a plate, resized 25 %, box filter", stills[256],
              plated(lambda x: _resize(x, 0.25, "BOX"))),
             *((f"256² over a plate, resized 25 %, {name}", stills[256],
                plated(lambda x, fn=fn: fn(x, 0.25))) for name, fn in _QUARTER.items()),
             ("512² over a plate, resized 25 % (128²)", stills[512],
              plated(lambda x: _resize(x, 0.25))),
             ("96² over a plate, JPEG q50", stills[96], plated(_jpeg)),
             ("128² over a plate, JPEG q75", stills[128], plated(lambda x: _jpeg(x, 75))),
             ("256² over a plate, rotated 2°", stills[256], plated(lambda x: _rotate(x, 2))),
             ("256² over a plate, 10 % crop each side", stills[256], plated(_crop)),
             ("256² over a plate, +20 % brightness", stills[256], plated(_bright)),
             ("512² over a plate, JPEG q50", stills[512], plated(_jpeg))]
    for label, unmarked, attack in rows:
        print(schemes.still_row(label, unmarked, attack), flush=True)

    print("\n## Stills read as a sequence (a folder of one render's frames of one size, as "
          "verify reads it: each frame alone / with its neighbours)\n")
    print("| frames | n | old: single frame, new scheme | **new: with neighbours** | "
          "unmarked baseline |")
    print("|---|---|---|---|---|")
    for label, unmarked, attack in (
            ("256² over a plate, resized 25 % (64²)", stills[256],
             plated(lambda x: _resize(x, 0.25))),
            ("128² over a plate, JPEG q50", stills[128], plated(_jpeg)),
            ("96² over a plate, JPEG q50", stills[96], plated(_jpeg))):
        new = read_video_marks([attack(schemes.new(u), i) for i, u in enumerate(unmarked)])
        base = read_video_marks([attack(u, i) for i, u in enumerate(unmarked)])
        n = len(unmarked)
        print(f"| {label} | {n} | {100 * new.frames_found / n:.0f} % | "
              f"**{100 * new.frames_windowed / n:.0f} %** (score {new.presence_score:.1f}) | "
              f"{100 * base.frames_windowed / n:.0f} % |", flush=True)

    print("\n## The demo MP4 (per frame alone / with 1 s of neighbours)\n")
    print("| video | frames | old scheme | previous round | **new: found** | "
          "new: payload (all frames) | unmarked baseline (new) |")
    print("|---|---|---|---|---|---|---|")
    for size, name in ((256, "demo"), (128, "demo --quick")):
        rgba, lm, _ = _render(subject, pack, "demo", size, smooth=True)
        old = _demo_mp4(_demo_layout([schemes.old(u) for u in rgba], lm))
        prev = _demo_mp4(_demo_layout([schemes.previous(u) for u in rgba], lm))
        new = _demo_mp4(_demo_layout([schemes.new(u) for u in rgba], lm))
        base = _demo_mp4(_demo_layout(rgba, lm))
        print(schemes.video_rows(f"{name} MP4 ({size}²) as written", old, prev, new, base))
        for crf in (23, 28):
            print(schemes.video_rows(f"{name} MP4 re-encoded, x264 CRF {crf}",
                                     _h264(old, crf), _h264(prev, crf), _h264(new, crf),
                                     _h264(base, crf)), flush=True)

    _cost(subject, pack, stills, render_s, schemes)
    _c2pa(stamp, [schemes.new(u) for u in stills[256]], plates[0])

    print("\n## False positives (new: as verify reads it, either mark; old: the payload "
          "mark's detector)\n")
    print("| clip | frames | new: presence found | payload mark found (old scheme; "
          "new reads it too) | new: as a video, frames found with neighbours | "
          "new: resized to 128 px + JPEG q50, found alone / as a video | new: resized to "
          "64 px, found | strongest presence score | strongest grid score (128 px) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in false_positives(data, fp_frames)[-2:]:
        print(row, flush=True)


def _cost(subject, pack, stills, render_s, schemes) -> None:
    print("\n## Cost\n")
    print("| measure | old scheme | previous round | new scheme | target |")
    print("|---|---|---|---|---|")
    marks = (("old", schemes.old), ("previous", schemes.previous), ("new", schemes.new))
    for size in (128, 256, 512):
        unmarked = stills[size]
        vis = np.stack(unmarked)[..., 3] > 0
        ref = np.stack(unmarked)[..., :3][vis]
        db = [_psnr(np.stack([mark(u) for u in unmarked])[..., :3][vis], ref)
              for _, mark in marks]
        print(f"| PSNR marked vs unmarked, subject pixels, {size}² | {db[0]:.1f} dB | "
              f"{db[1]:.1f} dB | {db[2]:.1f} dB | |")
    side = pack.frames.shape[1]
    for size in (side, 128):
        unmarked, _, _ = _render(subject, pack, "source", size)
        gt = pack.frames if size == side else [_resize(g, size / side) for g in pack.frames]
        plate = pack.plate if size == side else _resize(pack.plate, size / side)
        plain = np.mean([_psnr(_over(u, plate), g) for u, g in zip(unmarked, gt, strict=True)])
        held = {}
        for name, mark in marks:
            held[name] = np.mean([_psnr(_over(mark(u), plate), g)
                                  for u, g in zip(unmarked, gt, strict=True)]) - plain
        print(f"| held-out PSNR vs the real frames, {size}² (source framing, over the plate; "
              f"unmarked {plain:.2f} dB) | {held['old']:+.3f} dB | {held['previous']:+.3f} dB"
              f" | **{held['new']:+.3f} dB** | ≥ −0.1 dB |")
    for size in (128, 256, 512):
        ms = {}
        for name, mark in marks:
            mark(stills[size][0])  # pattern cached, as in a render
            t = time.process_time()
            reps = 0
            while time.process_time() - t < 1.0:
                for u in stills[size]:
                    mark(u)
                    reps += 1
            ms[name] = 1000 * (time.process_time() - t) / reps
        target = "≤ 5 ms" if size == 512 else ""
        print(f"| mark_frame CPU per {size}² RGBA frame, 1 thread | {ms['old']:.2f} ms | "
              f"{ms['previous']:.2f} ms | **{ms['new']:.2f} ms** | {target} |")
        print(f"| for scale: rendering one {size}² frame here (1 thread) | "
              f"{1000 * render_s[size]:.0f} ms | | | |")
    frames = [schemes.new(u) for u in stills[256]]
    t = time.perf_counter()
    for f in frames:
        detect(f)
    t_old = (time.perf_counter() - t) / len(frames)
    t = time.perf_counter()
    for f in frames:
        read_image_marks(f)
    t_new = (time.perf_counter() - t) / len(frames)
    print(f"| verify's reading per 256² frame | {1000 * t_old:.0f} ms | | {1000 * t_new:.0f} ms"
          " | |")


def _c2pa(stamp, marked: list[np.ndarray], plate: np.ndarray) -> None:
    print("\n## C2PA credentials\n")
    print("| measure | result |")
    print("|---|---|")
    signer = Signer(stamp)
    try:
        t = time.perf_counter()
        pngs = [encode_png(m) for m in marked]
        t_enc = (time.perf_counter() - t) / len(marked)
        t = time.perf_counter()
        signed = [signer.sign_bytes(p, "image/png", f"{i:06d}.png") for i, p in enumerate(pngs)]
        t_sign = (time.perf_counter() - t) / len(marked)
        t = time.perf_counter()
        states = [read_credentials(s, "image/png").state for s in signed]
        t_read = (time.perf_counter() - t) / len(marked)
        extra = np.mean([len(s) - len(p) for s, p in zip(signed, pngs, strict=True)])
        print(f"| PNG encode (zlib level 3) per 256² frame | {1000 * t_enc:.1f} ms |")
        print(f"| C2PA sign per frame | {1000 * t_sign:.1f} ms, +{extra / 1024:.1f} KB "
              f"({100 * extra / np.mean([len(p) for p in pngs]):.0f} % of the PNG) |")
        print(f"| C2PA read + validate per frame | {1000 * t_read:.1f} ms; states: "
              f"{', '.join(sorted(set(states)))} |")
    finally:
        signer.close()
    from ..media.mp4 import write_mp4

    with tempfile.TemporaryDirectory() as tmp:
        video = write_mp4(Path(tmp) / "bench.mp4", [_over(m, plate) for m in marked], 25)
        t = time.perf_counter()
        sign_video(video, stamp)
        t_mp4 = time.perf_counter() - t
        state = read_credentials(video, "video/mp4").state
        print(f"| C2PA sign an MP4 ({len(marked)} frames, {video.stat().st_size // 1024} KB)"
              f" | {1000 * t_mp4:.0f} ms; state {state} |")
