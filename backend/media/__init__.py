"""Media files in and out: ``decode`` reads video frames and audio tracks (PyAV), for the
motion model's data engine, the face tracker and the subject builder; ``mp4`` writes
MP4 with sound and ``frame_files`` writes PNG and depth sequences, atomically;
``face_preview`` draws the face mesh as a picture for the demo and the benches.

One package for both directions: the same library (PyAV) and the same concerns (frame
rates as fractions, RGB uint8 frames, 16 kHz mono audio) on either side of a file.
"""
