"""ZeroMQ endpoints as users type them: checked before ZeroMQ sees them.

ZeroMQ accepts ``tcp://127.0.0.1:99999`` (it wraps the port) and answers ``foo`` with a
bare "Invalid argument"; here both get a message that says what to type instead.
"""

from __future__ import annotations

import ipaddress

from ..errors import InputError

EXAMPLES = "e.g. tcp://127.0.0.1:5557, or ipc:///tmp/facecast.sock on Linux/macOS"


def check_address(address: object, *, bind: bool) -> str:
    """Return ``address`` if it is a usable tcp:// or ipc:// endpoint, else raise."""
    if not isinstance(address, str) or "://" not in address:
        raise InputError(f"address {str(address)[:80]!r} is not a ZeroMQ endpoint",
                         f"use {EXAMPLES}")
    scheme, rest = address.split("://", 1)
    if scheme == "ipc":
        if not rest or (rest == "*" and not bind):
            raise InputError(f"address {address!r} names no socket file",
                             "use e.g. ipc:///tmp/facecast.sock")
        return address
    if scheme != "tcp":
        raise InputError(f"address {address[:80]!r} uses {scheme}://, which Facecast does "
                         "not speak", f"use {EXAMPLES}")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host:
        raise InputError(f"address {address!r} has no host:port", f"use {EXAMPLES}")
    if not port_text.isdigit():
        raise InputError(f"port {port_text[:20]!r} in {address!r} is not a number",
                         "use a port from 1 to 65535" + (" (0 picks a free one)" if bind
                                                         else ""))
    port = int(port_text)
    lowest = 0 if bind else 1
    if not lowest <= port <= 65535:
        raise InputError(f"port {port} in {address!r} is out of range",
                         f"use a port from {lowest} to 65535"
                         + (" (0 picks a free one)" if bind else ""))
    if host == "*":
        if not bind:
            raise InputError(f"address {address!r} has the wildcard host '*'",
                             "connect to a host name or IP address, e.g. 127.0.0.1")
        return address
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if not all(part and len(part) <= 63 and part.replace("-", "").isalnum()
                   for part in bare.split(".")):
            raise InputError(f"host {host[:80]!r} in {address!r} is not an IP address or "
                             "host name", f"use {EXAMPLES}") from None
    return address

