"""Where an endpoint leads: one rule for "stays on this machine" used by both sides.

The backend refuses to listen on a non-loopback address without CurveZMQ, and the
add-on refuses to talk to one while Blender's "Allow Online Access" is off. Both ask
:func:`is_loopback`, so the two can never disagree about an address (the server once
checked ``startswith("127.")`` while the add-on asked :mod:`ipaddress`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

#: Host names that resolve to the loopback interface on every common system.
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def endpoint_host(address: str) -> str:
    """The host part of a ZeroMQ TCP endpoint (``tcp://host:port``); "" for others."""
    if not address.startswith("tcp://"):
        return ""
    try:
        host = urlsplit(address).hostname
    except ValueError:  # e.g. an unbalanced "[" in the host
        host = None
    if host is None:  # urlsplit cannot parse e.g. tcp://*:5557
        host = address[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    return host


def is_loopback(address: str) -> bool:
    """True when ``address`` never leaves this machine.

    ``ipc://`` and ``inproc://`` endpoints are local by nature; a TCP endpoint is local
    when its host is a loopback IP (all of 127.0.0.0/8, ``::1``) or a loopback name.
    Wildcards (``*``, ``0.0.0.0``) and every other host are not.
    """
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = endpoint_host(address)
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def accepts_connections(address: str, timeout_s: float = 0.5) -> bool:
    """Whether something listens at ``address`` right now (no message is exchanged).

    A ``tcp://`` endpoint gets a plain TCP connect that is closed at once: on loopback a
    closed port refuses in microseconds, so this can run on Blender's UI thread. An
    ``ipc://`` endpoint listens when its socket file exists. Anything else (``inproc``,
    a wildcard, an unparsable address) counts as listening: the caller then connects and
    lets the connection timeout speak, rather than starting a second backend.
    """
    if address.startswith("ipc://"):
        return os.path.exists(address[len("ipc://"):])
    host = endpoint_host(address)
    try:
        port = int(address.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return True
    if not host or host == "*" or not 0 <= port < 65536:
        return True
    if port == 0:  # "any free port": nothing can be listening there
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
