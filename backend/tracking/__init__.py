"""Face tracking, head pose and the tracking cache (one implementation for the data
engine and the subject builder). Import submodules directly; mediapipe loads lazily."""
