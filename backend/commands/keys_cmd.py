"""``facecast keys``: show/create the HMAC key file; make CurveZMQ key pairs."""

from __future__ import annotations

import argparse
from pathlib import Path

from shared.protocol.keys import config_dir, ensure_key_file, generate_curve_keypair


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="manage the HMAC key file and CurveZMQ keys")
    ks = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    h = ks.add_parser("hmac", help="create (if missing) and print the HMAC key file path")
    h.add_argument("--key-file", type=Path, default=None)
    h.set_defaults(func=_hmac)
    c = ks.add_parser("curve", help="create a CurveZMQ key pair NAME.key / NAME.key_secret")
    c.add_argument("name", help="e.g. 'server' on the GPU host, your machine's name on clients")
    c.add_argument("--dir", type=Path, default=None,
                   help="where to write them (default ~/.config/facecast/curve)")
    c.set_defaults(func=_curve)


def _hmac(args: argparse.Namespace) -> int:
    path, created = ensure_key_file(args.key_file)
    print(f"{path}{' (created, mode 0600)' if created else ''}")
    return 0


def _curve(args: argparse.Namespace) -> int:
    from backend.atomic_file import check_writable
    from shared.errors import InputError

    name = args.name.strip()
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise InputError(f"key name {args.name!r} is not a file name",
                         "pass a plain name such as 'server' or 'my-laptop'")
    folder = check_writable(args.dir or config_dir() / "curve", "key folder", folder=True)
    public, secret = generate_curve_keypair(folder, name)
    print(f"public key: {public}  (give this to the other side)")
    print(f"secret key: {secret}  (mode 0600; never share it)")
    return 0
