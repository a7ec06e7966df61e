"""Data engine: real talking-face clips -> aligned (audio features, blendshapes) arrays.

For each clip: track it (cached by ``backend.tracking``), remove the rigid head pose,
estimate the speaker's own neutral face, solve ARKit-52 weights against the linear basis
(``backend.motion.face_basis``), and compute the audio features of the clip's own sound track at
the clip's frame rate, so frame k of the video and frame k of the features cover the same
instant. The last ``HOLDOUT`` of every clip is split off and never used in training:
the motion bench measures lip sync there.

What this gives is about two minutes of real speech from five people: enough to learn
*when* and *how much* the mouth opens from audio, not emotions (no clip is labelled).
Emotion supervision is synthetic: FACS priors (``backend.motion.facs``) through the same basis,
added on top of these real speech motions during training (``backend.motion.train``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from shared.errors import InputError
from shared.landmarks import estimate_neutral

from .face_basis import solve_blendshapes

SPEECH_CLIPS: tuple[str, ...] = ("d6", "d9", "d11", "d12", "d14")
HOLDOUT = 0.2  # the last fifth of each clip is for evaluation only
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass
class ClipData:
    """One prepared clip; every per-frame array has the same length T."""

    name: str
    fps: Fraction
    face_landmarks: np.ndarray  # [T, 478, 3] metres, face space (pose removed)
    neutral: np.ndarray  # [478, 3] the speaker's estimated neutral face
    blendshapes: np.ndarray  # [T, 52] solved against the basis
    head_poses: np.ndarray  # [T, 4, 4] head-to-camera, smoothed
    mel: np.ndarray  # [T, W, 80]
    prosody: np.ndarray  # [T, 4]
    vad: np.ndarray  # [T] bool
    evidence: np.ndarray  # [T, 29] phone evidence of the clip's sound (phone loop)

    @property
    def n_frames(self) -> int:
        return int(self.blendshapes.shape[0])

    @property
    def split(self) -> int:
        """First held-out frame: frames [split, T) are never trained on."""
        return round(self.n_frames * (1.0 - HOLDOUT))

    def part(self, held_out: bool) -> ClipData:
        s = slice(self.split, None) if held_out else slice(0, self.split)
        return ClipData(self.name, self.fps, self.face_landmarks[s], self.neutral,
                        self.blendshapes[s], self.head_poses[s], self.mel[s],
                        self.prosody[s], self.vad[s], self.evidence[s])


def real_data_file(kind: str, name: str, suffix: str, data_dir: str | Path | None = None,
                   what: str = "file") -> Path:
    """``../shared/data/KIND/NAME.SUFFIX`` (or ``data_dir/NAME.SUFFIX``), or a clear error."""
    path = Path(data_dir or SHARED_DATA / kind) / f"{name}{suffix}"
    if not path.is_file():
        raise InputError(f"{what} {path} is absent",
                         f"the real data lives in ../shared/data/{kind} beside the checkout")
    return path


def clip_path(name: str, data_dir: str | Path | None = None) -> Path:
    return real_data_file("clips", name, ".mp4", data_dir, "training clip")


def fill_missing(x: np.ndarray) -> np.ndarray:
    """Linearly interpolate frames that are NaN (no face found) from their neighbours."""
    x = np.array(x, dtype=np.float64)
    flat = x.reshape(len(x), -1)
    ok = np.all(np.isfinite(flat), axis=1)
    if not ok.any():
        raise InputError("no face was found in any frame", "use a clip showing one face")
    if ok.all():
        return x
    t = np.arange(len(x))
    for j in range(flat.shape[1]):
        flat[~ok, j] = np.interp(t[~ok], t[ok], flat[ok, j])
    return flat.reshape(x.shape)


def prepare_clip(path: str | Path, context_hops: int | None = None) -> ClipData:
    """Track, solve and align one clip (tracking is cached, the rest takes ~1 s)."""
    from backend.audio import Audio, compute_audio_features, compute_frame_features
    from backend.audio.frame_features import DEFAULT_CONTEXT_HOPS
    from backend.media.decode import read_audio_track
    from backend.tracking.cache import track_clip
    from backend.tracking.head_pose import smooth_poses

    from .features import model_inputs
    from .phones import phone_evidence

    path = Path(path)
    tracks = track_clip(path, progress=False)
    poses = tracks.head_poses()
    face = fill_missing(poses.face_landmarks).astype(np.float32)
    neutral = estimate_neutral(face)
    weights = solve_blendshapes(face, neutral)
    head = smooth_poses(fill_missing(poses.poses))
    sound = read_audio_track(path)
    if sound is None:
        raise InputError(f"{path.name} has no audio track", "use a clip with speech")
    audio = Audio(np.ascontiguousarray(sound[0], np.float32), sound[1], path.name)
    n = len(tracks.frame_index)
    if not np.array_equal(tracks.frame_index, np.arange(n)):
        raise InputError(f"{path.name} was tracked with frame gaps",
                         "track every frame (stride 1) for training")
    hops = compute_audio_features(audio)
    feats = compute_frame_features(audio, tracks.fps, first_frame=0, n_frames=n,
                                   context_hops=context_hops or DEFAULT_CONTEXT_HOPS,
                                   features=hops)
    mel, pros = model_inputs(feats)
    ev = phone_evidence(audio.samples).at_frames(feats.frame_times, float(tracks.fps))
    return ClipData(path.stem, tracks.fps, face, neutral, weights,
                    head.astype(np.float32), mel, pros, feats.vad.copy(), ev)


def load_clips(names: tuple[str, ...] = SPEECH_CLIPS, data_dir: str | Path | None = None,
               progress: bool = False) -> list[ClipData]:
    """Prepare every named clip (whole; callers split with ``ClipData.part``)."""
    out = []
    for name in names:
        if progress:
            print(f"preparing {name} ...", flush=True)
        out.append(prepare_clip(clip_path(name, data_dir)))
    return out


def head_motion_stats(clips: list[ClipData]) -> dict[str, list[float]]:
    """Std of head rotation (degrees: pitch, yaw, roll) and translation (metres) about
    each clip's own mean pose, pooled over clips: the amplitude head motion copies."""
    from scipy.spatial.transform import Rotation

    rots, trans = [], []
    for c in clips:
        p = c.head_poses[: c.split]
        r = Rotation.from_matrix(p[:, :3, :3].astype(np.float64))
        mean = r.mean()
        rots.append((mean.inv() * r).as_euler("xyz", degrees=True))
        trans.append(p[:, :3, 3] - p[:, :3, 3].mean(axis=0))
    return {"rot_std_deg": np.concatenate(rots).std(axis=0).round(3).tolist(),
            "trans_std_m": np.concatenate(trans).std(axis=0).round(5).tolist()}


def augmented_copies(clip: ClipData, rng: np.random.Generator, n_copies: int,
                     data_dir: str | Path | None = None) -> list[ClipData]:
    """``n_copies`` versions of ``clip`` whose audio features come from a degraded copy
    of its sound track (``augment.augment_audio``: reverb, music bed, noise, gain).

    Why: each real clip was recorded one way, so the VAE learned those rooms and mics;
    the same mouth motion under other acoustics teaches it the speech instead. The motion
    targets are shared, not copied; the audio length is kept, so frames stay aligned.
    """
    from backend.audio import Audio, compute_audio_features, compute_frame_features
    from backend.media.decode import read_audio_track

    from .augment import augment_audio
    from .features import model_inputs
    from .phones import phone_evidence

    if n_copies <= 0:
        return []
    pcm, rate = read_audio_track(clip_path(clip.name, data_dir))
    out = []
    for _ in range(n_copies):
        audio = Audio(np.ascontiguousarray(augment_audio(pcm, rate, rng)), rate, clip.name)
        feats = compute_frame_features(audio, clip.fps, first_frame=0, n_frames=clip.n_frames,
                                       context_hops=clip.mel.shape[1] // 2,
                                       features=compute_audio_features(audio))
        mel, pros = model_inputs(feats)
        ev = phone_evidence(audio.samples).at_frames(feats.frame_times, float(clip.fps))
        out.append(ClipData(clip.name, clip.fps, clip.face_landmarks, clip.neutral,
                            clip.blendshapes, clip.head_poses, mel, pros, feats.vad.copy(),
                            ev))
    return out
