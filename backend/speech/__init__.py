"""Speech the project makes itself (no downloads): espeak-ng text-to-speech."""

from .espeak import PhonemeEvent, SpeechClip, synthesize

__all__ = ["PhonemeEvent", "SpeechClip", "synthesize"]
