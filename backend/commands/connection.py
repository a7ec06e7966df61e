"""Client-side connection options shared by every command that talks to a backend."""

from __future__ import annotations

import argparse
from pathlib import Path

from shared.protocol import DEFAULT_ADDRESS, BlockingClient, CurveClientKeys, load_key
from shared.protocol.keys import load_curve_keypair, load_curve_public


def add_connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=DEFAULT_ADDRESS, help="backend endpoint")
    p.add_argument("--key-file", type=Path, default=None, help="HMAC key file of the backend")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for replies")
    p.add_argument("--curve-server", type=Path, default=None, metavar="SERVER.key",
                   help="the server's Curve public key (remote hosts)")
    p.add_argument("--curve-client", type=Path, default=None, metavar="CLIENT.key_secret",
                   help="this client's Curve secret key (remote hosts)")


def connect(args: argparse.Namespace) -> BlockingClient:
    curve = None
    if args.curve_server or args.curve_client:
        from shared.errors import InputError

        if not (args.curve_server and args.curve_client):
            raise InputError("Curve needs both --curve-server and --curve-client",
                             "pass the server's .key and your .key_secret")
        public, secret = load_curve_keypair(args.curve_client)
        curve = CurveClientKeys(load_curve_public(args.curve_server), public, secret)
    return BlockingClient(args.address, key=load_key(args.key_file), timeout_s=args.timeout,
                          curve=curve, name="facecast-cli")
