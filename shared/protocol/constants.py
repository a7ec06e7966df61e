"""Wire constants: protocol id, versions, message types, error codes and default limits."""

from __future__ import annotations

#: First frame of every message: 4-byte protocol id, 1-byte major version, 1-byte MAC id
#: (see ``signing.py``), so the receiver can check the signature before parsing.
PROTOCOL_ID = b"FCST"
MAJOR_VERSION = 1
MINOR_VERSION = 0
PROTOCOL_FRAME_BYTES = 6
#: Versions this build can speak, newest first, as (major, minor).
SUPPORTED_VERSIONS: tuple[tuple[int, int], ...] = ((MAJOR_VERSION, MINOR_VERSION),)

SIGNATURE_BYTES = 32
#: Frames before the raw array buffers: protocol, signature, header, body.
FIXED_FRAMES = 4


class MsgType:
    """Message type names carried in the header's ``type`` field."""

    # client -> server
    HELLO = "hello"
    PING = "ping"
    SUBMIT = "submit"
    CANCEL = "cancel"
    CREDIT = "credit"
    BYE = "bye"
    # both ways (same-host fast path): shared-memory slots the receiver has copied
    RELEASE = "release"
    # server -> client
    WELCOME = "welcome"
    PONG = "pong"
    ACCEPTED = "accepted"
    PROGRESS = "progress"
    RESULT = "result"
    FRAME = "frame"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"

    CLIENT_TYPES = frozenset({HELLO, PING, SUBMIT, CANCEL, CREDIT, BYE, RELEASE})
    SERVER_TYPES = frozenset({WELCOME, PONG, ACCEPTED, PROGRESS, RESULT, FRAME, DONE, ERROR,
                              CANCELLED, RELEASE})
    #: Exactly one of these ends every job.
    FINAL_TYPES = frozenset({DONE, ERROR, CANCELLED})


class ErrorCode:
    """Stable codes for ERROR replies; clients branch on these, users read the message."""

    BAD_REQUEST = "bad_request"
    BAD_INPUT = "bad_input"
    UNKNOWN_JOB_KIND = "unknown_job_kind"
    DUPLICATE_JOB = "duplicate_job"
    BUSY = "busy"
    VERSION_MISMATCH = "version_mismatch"
    NO_SESSION = "no_session"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    SERVER_RESTARTED = "server_restarted"


DEFAULT_PORT = 5557
DEFAULT_ADDRESS = f"tcp://127.0.0.1:{DEFAULT_PORT}"

# Receive-side limits (both ends). A message over any of them is dropped unread.
DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024  # also zmq.MAXMSGSIZE: the peer is cut off
DEFAULT_MAX_FRAMES = 68  # FIXED_FRAMES + 64 arrays
DEFAULT_MAX_TOTAL_BYTES = 512 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_NDIM = 8
#: Accepted clock difference between peers; older messages are treated as replays.
MAX_CLOCK_SKEW_S = 300.0
#: Most frames a job may have granted at once: the initial credit and later grants are
#: capped here, so a client cannot make the server queue an unbounded stream.
MAX_CREDIT = 4096
