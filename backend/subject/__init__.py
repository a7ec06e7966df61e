"""Subjects: a captured person, built from a video (``build``), stored as a folder with a
versioned ``manifest.json`` + model weights, loaded for rendering (``store``)."""
