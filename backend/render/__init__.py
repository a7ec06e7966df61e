"""The render service: one typed request in, stamped frames out (see :mod:`.service`)."""

from .service import (
    FrontCamera,
    RemoteRenderer,
    Render,
    RenderedFrame,
    RenderRequest,
    prepare_render,
    render_frames,
)

__all__ = ["FrontCamera", "RemoteRenderer", "Render", "RenderRequest", "RenderedFrame",
           "prepare_render", "render_frames"]
