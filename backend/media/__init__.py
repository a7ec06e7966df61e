"""Writing finished media: MP4 with sound, atomically."""
