"""Video decoding (PyAV) shared by the motion-model data engine and the subject builder."""

from .decode import Video, VideoInfo, iter_frames, probe_video, read_audio_track, read_video

__all__ = ["Video", "VideoInfo", "iter_frames", "probe_video", "read_audio_track", "read_video"]
