"""Where an endpoint leads: one rule for "stays on this machine" used by both sides.

The backend refuses to listen on a non-loopback address without CurveZMQ, and the
add-on refuses to talk to one while Blender's "Allow Online Access" is off. Both ask
:func:`is_loopback`, so the two can never disagree about an address (the server once
checked ``startswith("127.")`` while the add-on asked :mod:`ipaddress`).
"""

from __future__ import annotations

import ipaddress
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
