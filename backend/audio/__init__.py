"""Audio front-end: load any audio, extract per-hop features, align them to video frames.

Typical use::

    audio = load_audio("line.wav")                       # mono float32, 16 kHz
    for chunk in iter_frame_feature_chunks(audio, "29.97", first_frame=1):
        model(chunk.mel, chunk.energy_db, ...)
"""

from .features import AudioFeatures, compute_audio_features, mel_filterbank
from .frame_features import FrameFeatures, compute_frame_features, iter_frame_feature_chunks
from .loading import Audio, load_audio
from .timing import FrameClock, offset_for_strip, parse_fps

__all__ = [
    "Audio",
    "AudioFeatures",
    "FrameClock",
    "FrameFeatures",
    "compute_audio_features",
    "compute_frame_features",
    "iter_frame_feature_chunks",
    "load_audio",
    "mel_filterbank",
    "offset_for_strip",
    "parse_fps",
]
