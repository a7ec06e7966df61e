"""``facecast info``: ask a running backend what it is and what it offers."""

from __future__ import annotations

import argparse
import json

from .connection import add_connection_args, connect


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a running backend (device, versions, jobs)")
    add_connection_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        print(json.dumps(client.call("info").body, indent=2))
    return 0
