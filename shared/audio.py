"""The one sample rate of speech in Facecast: 16 kHz mono.

Every model that hears the dialogue runs at it (our audio features, the Silero voice
activity detector, pocketsphinx's phone models, the MFCC front-end), the add-on sends its
PCM at it and the backend loads any file at it, so it is one constant on both sides of
the wire.
"""

SAMPLE_RATE = 16000
