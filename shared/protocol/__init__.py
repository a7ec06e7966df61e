"""The Facecast wire protocol over ZeroMQ. The full spec is ``PROTOCOL.md`` beside this file."""

from .arrays import ALLOWED_DTYPES, check_descriptor, from_wire, to_wire
from .client import BlockingClient, Client, CurveClientKeys, Event
from .constants import (
    DEFAULT_ADDRESS,
    DEFAULT_PORT,
    MAJOR_VERSION,
    MINOR_VERSION,
    SUPPORTED_VERSIONS,
    ErrorCode,
    MsgType,
)
from .keys import default_key_path, ensure_key_file, load_key
from .messages import Codec, Message, ReplayGuard, VersionMismatch, error_body
from .signing import Signer

__all__ = [
    "ALLOWED_DTYPES", "DEFAULT_ADDRESS", "DEFAULT_PORT", "MAJOR_VERSION", "MINOR_VERSION",
    "SUPPORTED_VERSIONS", "BlockingClient", "Client", "Codec", "CurveClientKeys", "ErrorCode",
    "Event", "Message", "MsgType", "ReplayGuard", "Signer", "VersionMismatch",
    "check_descriptor", "default_key_path", "ensure_key_file", "error_body", "from_wire",
    "load_key", "to_wire",
]
