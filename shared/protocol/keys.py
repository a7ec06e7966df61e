"""Key files: the HMAC secret (mode 0600) and CurveZMQ certificates for remote hosts.

The HMAC key lives in one small file both sides read. It is created with mode 0600 and
refused when other users can read it, because anyone holding it can drive the backend.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from ..errors import FacecastError

KEY_BYTES = 32


def config_dir() -> Path:
    """Where Facecast keeps keys: ``$FACECAST_HOME`` or ``~/.config/facecast``."""
    env = os.environ.get("FACECAST_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "facecast"


def default_key_path() -> Path:
    return config_dir() / "hmac.key"


def ensure_key_file(path: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """Create the key file (0600) if missing; return ``(path, created)``. Never overwrites."""
    key_path = Path(path) if path else default_key_path()
    key_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        load_key(key_path)  # validate what is there
        return key_path, False
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(KEY_BYTES) + "\n")
    return key_path, True


def load_key(path: str | os.PathLike | None = None) -> bytes:
    """Read a key file written by :func:`ensure_key_file`."""
    key_path = Path(path) if path else default_key_path()
    if key_path.is_dir():
        raise FacecastError(f"key file {key_path} is a folder, not a key file",
                            "pass the key file itself (e.g. "
                            f"{key_path / default_key_path().name}), or a path where "
                            "`facecast serve` may create one", code="key_file")
    if not key_path.is_file():
        raise FacecastError(f"key file {key_path} does not exist",
                            "start the backend once (`facecast serve`) to create it, or "
                            "point to the file it printed", code="key_file")
    _refuse_shared_secret(key_path, "key file")
    text = key_path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise FacecastError(f"key file {key_path} does not hold a hex key of at least "
                            "16 bytes", "delete it and let `facecast serve` create a new one",
                            code="key_file")
    return key


def _refuse_shared_secret(path: Path, what: str) -> None:
    """A secret other users can read is no secret: refuse it with the fix."""
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise FacecastError(f"{what} {path} is readable by other users (mode {mode:o})",
                                f"run: chmod 600 {path}", code="key_file")


def generate_curve_keypair(directory: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (0600) with pyzmq's helper."""
    import zmq.auth

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    public, secret = (out / f"{name}.key", out / f"{name}.key_secret")
    if public.exists() or secret.exists():
        raise FacecastError(f"Curve keys named {name!r} already exist in {out}",
                            "choose another name or delete the old pair first",
                            code="key_file")
    pub, sec = zmq.auth.create_certificates(str(out), name)
    os.chmod(sec, 0o600)
    return Path(pub), Path(sec)


def load_curve_keypair(secret_file: str | os.PathLike) -> tuple[bytes, bytes]:
    """Return ``(public, secret)`` Z85 keys from a ``.key_secret`` file."""

    path = Path(secret_file)
    if not path.is_file():
        raise FacecastError(f"Curve secret key {path} does not exist",
                            "create one with `facecast keys curve NAME`", code="key_file")
    _refuse_shared_secret(path, "Curve secret key")
    public, secret = _read_certificate(path)
    if not secret or not _is_z85_key(secret):
        raise FacecastError(f"{path} holds no secret key",
                            "pass the .key_secret file, not the public .key", code="key_file")
    return public, secret


def load_curve_public(public_file: str | os.PathLike) -> bytes:

    path = Path(public_file)
    if not path.is_file():
        raise FacecastError(f"Curve public key {path} does not exist",
                            "copy the server's .key file to this machine", code="key_file")
    public, _ = _read_certificate(path)
    return public


def load_curve_allow_list(directory: str | os.PathLike) -> dict[bytes, Path]:
    """The allowed clients' public keys: every ``*.key`` in ``directory``.

    Every file must be a valid public key certificate: one stray file would otherwise
    make ZeroMQ's authenticator drop the whole list while the server says Curve is on.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise FacecastError(f"--curve-clients {folder} is not a folder",
                            "make a folder and copy each allowed client's .key file into it",
                            code="key_file")
    keys: dict[bytes, Path] = {}
    for path in sorted(folder.glob("*.key")):
        public, _ = _read_certificate(path)
        keys[public] = path
    if not keys:
        raise FacecastError(f"--curve-clients {folder} holds no client public keys (*.key)",
                            "create one with `facecast keys curve CLIENTNAME` on the client "
                            "and copy its .key file into that folder", code="key_file")
    return keys


def _read_certificate(path: Path) -> tuple[bytes, bytes | None]:
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError, IndexError) as exc:
        public, secret = None, None
        reason = str(exc)
    else:
        reason = "its public-key is not a 40-character Z85 key"
    if public is None or not _is_z85_key(public):
        raise FacecastError(f"{path} is not a Curve key certificate ({reason[:120]})",
                            "remove it, or replace it with a .key file written by "
                            "`facecast keys curve NAME`", code="key_file")
    return public, secret


def _is_z85_key(key: bytes) -> bool:
    from zmq.utils import z85

    if len(key) != 40:
        return False
    try:
        return len(z85.decode(key)) == 32
    except (ValueError, KeyError, TypeError):
        return False
