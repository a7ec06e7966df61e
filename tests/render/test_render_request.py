"""The render job's wire request (``shared.render_request``): what a client builds is what
the backend reads, arrays by name, and a wrong ``array_names`` is one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from shared.errors import InputError
from shared.render_request import RenderJobRequest


def test_round_trip_by_name() -> None:
    arrays = {"head_pose": np.tile(np.eye(4, dtype=np.float32), (3, 1, 1)),
              "blendshapes": np.random.default_rng(0).random((3, 52), np.float32)}
    sent = RenderJobRequest("default", {"lens": 50.0}, arrays, head_pose_frame="world",
                            placement=np.eye(4), signed_png=True)
    params, wire = sent.to_wire()
    assert params["array_names"] == ["blendshapes", "head_pose"]  # sorted, as sent
    assert params["placement"] == np.eye(4).tolist()
    assert set(params) == {"subject", "camera", "array_names", "head_pose_frame", "device",
                           "fp16", "signed_png", "placement"}  # only what the job reads
    got = RenderJobRequest.from_wire(params, wire)
    assert (got.subject, got.camera, got.head_pose_frame, got.signed_png, got.fp16,
            got.device) == ("default", {"lens": 50.0}, "world", True, True, "auto")
    for name, a in arrays.items():
        assert np.array_equal(got.arrays[name], a)


@pytest.mark.parametrize("names", [["blendshapes"], ["pixels", "head_pose"],
                                   ["head_pose", "head_pose"], "blendshapes"])
def test_array_names_must_describe_the_arrays(names) -> None:
    arrays = [np.zeros((2, 52), np.float32), np.zeros((2, 4, 4), np.float32)]
    with pytest.raises(InputError, match="does not describe the 2 arrays sent") as err:
        RenderJobRequest.from_wire({"array_names": names}, arrays)
    assert "name each array once" in err.value.fix


def test_the_backend_request_is_the_wire_request() -> None:
    """The render service reads the job's request type itself (plus CLI-only fields)."""
    from backend.render import RenderRequest

    params, wire = RenderJobRequest("default", {}, {"blendshapes": np.zeros((1, 52))}
                                    ).to_wire()
    request = RenderRequest.from_wire(params, wire)
    assert isinstance(request, RenderRequest) and request.made_for is None
    assert request.first_number == 0 and list(request.arrays) == ["blendshapes"]
