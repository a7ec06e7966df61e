"""C2PA content credentials: sign rendered PNGs and MP4s, read them back.

Every rendered PNG and the demo MP4 carry a C2PA manifest (written with the
``c2pa-python`` package, whose wheel ships the Rust C2PA library) that says:

* ``c2pa.actions.v2``: ``c2pa.created`` with the IPTC digital source type
  ``trainedAlgorithmicMedia`` (made by a trained model, not captured), by Facecast;
* ``org.facecast.render``: whose face it is (subject name and fingerprint), its consent
  record (statement hash, date, source clip hash; or "not recorded"), the render id and
  the invisible watermark's payload, so the two can be checked against each other.

Signing key: per installation, created on first use in ``$FACECAST_HOME/c2pa`` (or
``~/.config/facecast/c2pa``): an ES256 key (mode 0600) and a certificate issued by a
local root created at the same time (C2PA refuses self-signed signing certificates; the
root's private key is thrown away once it has issued the signer's). Supply your own with
``FACECAST_C2PA_CERT`` (PEM chain, signer first) and ``FACECAST_C2PA_KEY`` (PEM key,
mode 0600). What a verifier reports for the local key: the manifest's structure and
signature are valid and the content matches it, but the signer is *untrusted* (its root
is on no public trust list) - except on this installation, where ``facecast verify``
trusts its own root. Only a certificate from a CA on the C2PA trust list would change
that elsewhere.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import stat
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared import __version__
from shared.errors import FacecastError
from shared.protocol.keys import config_dir

from .stamp import RenderStamp

TRAINED_ALGORITHMIC_MEDIA = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia")
RENDER_ASSERTION = "org.facecast.render"
CERT_ENV, KEY_ENV = "FACECAST_C2PA_CERT", "FACECAST_C2PA_KEY"
_DIR = "c2pa"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
         ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
         ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff"}


def mime_of(path: str | Path) -> str | None:
    return _MIME.get(Path(path).suffix.lower())


# --------------------------------------------------------------------------------------
# The signing identity


@dataclass(frozen=True)
class SigningIdentity:
    """A private key + its certificate chain (PEM), and where they came from."""

    chain_pem: bytes
    key_pem: bytes
    alg: str  # c2pa-python's name: es256, es384, ps256, ed25519
    origin: str  # "installation" or "user"
    root_pem: bytes | None = None  # the installation's local root (a trust anchor here)


def identity_dir() -> Path:
    return config_dir() / _DIR


def _check_private(path: Path) -> None:
    if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise FacecastError(f"signing key {path} is readable by other users",
                            f"run: chmod 600 {path}", code="key_file")


def _alg_for(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "es256", "secp384r1": "es384",
                "secp521r1": "es512"}.get(key.curve.name, "")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    return ""


def _user_identity() -> SigningIdentity | None:
    cert, key = os.environ.get(CERT_ENV), os.environ.get(KEY_ENV)
    if not cert and not key:
        return None
    if not (cert and key):
        raise FacecastError(f"only one of {CERT_ENV} and {KEY_ENV} is set",
                            "set both (certificate chain PEM and private key PEM), or "
                            "neither to use this installation's own key")
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    cert_path, key_path = Path(cert).expanduser(), Path(key).expanduser()
    try:
        chain, key_pem = cert_path.read_bytes(), key_path.read_bytes()
        _check_private(key_path)
        alg = _alg_for(load_pem_private_key(key_pem, password=None))
    except OSError as exc:
        raise FacecastError(f"cannot read the C2PA signing files: {exc}",
                            f"point {CERT_ENV}/{KEY_ENV} at readable PEM files") from exc
    except (ValueError, TypeError) as exc:
        raise FacecastError(f"{key_path} is not an unencrypted PEM private key: {exc}",
                            "export the key as unencrypted PKCS#8 PEM (mode 0600)") from exc
    if not alg:
        raise FacecastError(f"the key in {key_path} is of a type C2PA cannot sign with",
                            "use an EC P-256/P-384/P-521, Ed25519 or RSA key")
    return SigningIdentity(chain, key_pem, alg, "user")


def _create_identity(folder: Path) -> None:
    """A local root + an ES256 signer certificate it issues, written to ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    host = os.uname().nodename if hasattr(os, "uname") else "this computer"

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                             "Facecast (self-issued, not on a trust list)")])

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (x509.CertificateBuilder()
            .subject_name(name(f"Facecast local root ({host})"))
            .issuer_name(name(f"Facecast local root ({host})"))
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                         False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()),
                           critical=False)
            .sign(root_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(name(f"Facecast renderer ({host})")).issuer_name(root.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650 - 2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                         False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "root.pem").write_bytes(root.public_bytes(pem))
    (folder / "signer.pem").write_bytes(cert.public_bytes(pem) + root.public_bytes(pem))
    fd = os.open(folder / "signer.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


_IDENTITY_LOCK = threading.Lock()


def signing_identity() -> SigningIdentity:
    """The user's key (``FACECAST_C2PA_CERT``/``_KEY``) or this installation's, created
    on first use. Safe when several processes start at once: the folder is built aside
    and renamed into place, and whoever loses the race uses the winner's."""
    user = _user_identity()
    if user is not None:
        return user
    folder = identity_dir()
    with _IDENTITY_LOCK:
        if not (folder / "signer.key").is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".c2pa-", dir=folder.parent))
            try:
                os.chmod(tmp, 0o700)
                _create_identity(tmp)
                try:
                    os.rename(tmp, folder)
                except OSError:
                    if not (folder / "signer.key").is_file():
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    key = folder / "signer.key"
    try:
        _check_private(key)
        return SigningIdentity((folder / "signer.pem").read_bytes(), key.read_bytes(),
                               "es256", "installation", (folder / "root.pem").read_bytes())
    except OSError as exc:
        raise FacecastError(f"the C2PA signing key in {folder} is incomplete: {exc}",
                            f"delete {folder} and it is created again on the next "
                            "render") from exc


def local_trust_anchor() -> bytes | None:
    """This installation's root certificate, if it has one (never creates it)."""
    path = identity_dir() / "root.pem"
    try:
        return path.read_bytes()
    except OSError:
        return None


# --------------------------------------------------------------------------------------
# Signing


def manifest_definition(stamp: RenderStamp, title: str, what: str = "frame") -> dict:
    """The C2PA manifest a rendered file carries."""
    agent = {"name": "Facecast", "version": __version__}
    return {
        "claim_generator_info": [agent],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions.v2",
             "data": {"actions": [{
                 "action": "c2pa.created",
                 "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                 "softwareAgent": agent,
                 "description": f"Facecast {what}: a photoreal face rendered by a "
                                f"tri-plane NeRF of subject {stamp.subject_name!r}, "
                                "driven by generated animation"}]}},
            {"label": RENDER_ASSERTION, "data": stamp.assertion()},
        ],
    }


class Signer:
    """Signs files for one render with the active identity (reuse it for every frame)."""

    def __init__(self, stamp: RenderStamp, identity: SigningIdentity | None = None) -> None:
        import c2pa

        self.stamp = stamp
        self.identity = identity or signing_identity()
        info = c2pa.C2paSignerInfo(self.identity.alg, self.identity.chain_pem,
                                   self.identity.key_pem, None)
        try:
            self._signer = c2pa.Signer.from_info(info)
        except c2pa.C2paError as exc:
            raise FacecastError(f"the C2PA signing key cannot sign: {exc}",
                                f"check {CERT_ENV}/{KEY_ENV}, or unset them to use this "
                                "installation's key") from exc
        # Thumbnails would embed a second picture in every frame (a 256^2 PNG grew from
        # 0.26 MB to 3.7 MB and signing took 240 ms instead of 2 ms).
        self._context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})

    def _builder(self, title: str, what: str):
        import c2pa

        return c2pa.Builder(manifest_definition(self.stamp, title, what), self._context)

    def sign_bytes(self, data: bytes, mime: str, title: str, what: str = "frame") -> bytes:
        out = io.BytesIO()
        self._builder(title, what).sign(self._signer, mime, io.BytesIO(data), out)
        return out.getvalue()

    def sign_file(self, source: Path, dest: Path, what: str = "video") -> None:
        """Sign ``source`` into ``dest`` (a different path; written whole, then renamed)."""
        mime = mime_of(source)
        if mime is None:
            raise FacecastError(f"cannot sign {source.name}: unknown file type",
                                "sign PNG, JPEG or MP4 files")
        tmp = dest.with_name(f".{dest.name}.signing{dest.suffix}")
        try:
            with open(source, "rb") as src, open(tmp, "w+b") as dst:
                self._builder(dest.name, what).sign(self._signer, mime, src, dst)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        self._signer.close()
        self._context.close()


def sign_video(path: Path, stamp: RenderStamp) -> None:
    """Sign a finished video file in place (written aside, then renamed over it)."""
    signer = Signer(stamp)
    try:
        signer.sign_file(path, path, what="video")
    finally:
        signer.close()


def encode_png(rgba, compress_level: int = 3) -> bytes:
    """PNG bytes of a uint8 image (PIL; level 3 is ~3x faster than 6, ~10 % larger)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# Reading


@dataclass
class Credentials:
    """What the C2PA manifest of a file says, and whether it holds up.

    ``state``: ``none`` (no manifest), ``trusted`` (valid, signer chains to a trust
    anchor: this installation's root or one passed in), ``valid`` (structure, signature
    and content hash check out; signer not on any trust list given), ``invalid`` (a
    manifest is there but the file no longer matches it, or the signature fails: edited
    after signing), ``damaged`` (a manifest is there but cannot be parsed).
    """

    state: str
    detail: str = ""
    signer: str = ""
    issuer: str = ""
    synthetic: bool = False  # declares the trainedAlgorithmicMedia source type
    render: dict = field(default_factory=dict)  # the org.facecast.render assertion
    failures: list[str] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return self.state != "none"

    @property
    def ok(self) -> bool:
        return self.state in ("valid", "trusted")


def read_credentials(data: bytes | io.IOBase | Path, mime: str,
                     trust_anchors: bytes | None = None) -> Credentials:
    import c2pa

    settings: dict = {}
    anchors = trust_anchors if trust_anchors is not None else local_trust_anchor()
    if anchors:
        settings = {"trust": {"trust_anchors": anchors.decode()}}
    if isinstance(data, Path):
        stream: Any = open(data, "rb")  # noqa: SIM115 - closed below
    elif isinstance(data, bytes | bytearray):
        stream = io.BytesIO(data)
    else:
        stream = data
    try:
        with c2pa.Context.from_dict(settings) as ctx, \
                c2pa.Reader(mime, stream, context=ctx) as reader:
            state = reader.get_validation_state() or ""
            results = reader.get_validation_results() or {}
            active = reader.get_active_manifest() or {}
    except c2pa.C2paError as exc:
        text = str(exc)
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in text \
                or "ManifestNotFound" in text:
            return Credentials("none")
        if "invalid header" in text:  # not a file of that type at all: nothing to read
            return Credentials("none", detail=text.splitlines()[0][:300])
        return Credentials("damaged", detail=text.splitlines()[0][:300])
    finally:
        if isinstance(data, Path):
            stream.close()
    failures = [f.get("code", "") for f in
                (results.get("activeManifest") or {}).get("failure", [])]
    sig = active.get("signature_info") or {}
    creds = Credentials("none", signer=str(sig.get("common_name", "")),
                        issuer=str(sig.get("issuer", "")), failures=failures)
    for a in active.get("assertions", []):
        if a.get("label", "").startswith("c2pa.actions"):
            creds.synthetic |= any(x.get("digitalSourceType") == TRAINED_ALGORITHMIC_MEDIA
                                   for x in a.get("data", {}).get("actions", []))
        elif a.get("label") == RENDER_ASSERTION:
            creds.render = dict(a.get("data") or {})
    blocking = [f for f in failures if f != "signingCredential.untrusted"]
    if state == "Trusted":
        creds.state = "trusted"
    elif state == "Valid" and not blocking:
        creds.state = "valid"
        creds.detail = ("signer untrusted: its certificate chains to no trust anchor "
                        "given" if "signingCredential.untrusted" in failures else "")
    else:
        creds.state = "invalid"
        creds.detail = ", ".join(blocking) or state
    return creds


def describe(creds: Credentials) -> str:
    """One line for ``facecast verify``."""
    if creds.state == "none":
        return "no C2PA manifest"
    if creds.state == "damaged":
        return f"C2PA manifest DAMAGED ({creds.detail})"
    if creds.state == "invalid":
        return f"C2PA manifest INVALID: the file changed after signing ({creds.detail})"
    who = f"signed by {creds.signer}" if creds.signer else "signed"
    trust = ("trusted here" if creds.state == "trusted" else
             "valid, signer not on a trust list")
    kind = "synthetic (trainedAlgorithmicMedia)" if creds.synthetic else \
        "no synthetic-media declaration"
    return f"C2PA manifest {trust}; {who}; {kind}"


def dumps(creds: Credentials) -> str:
    return json.dumps(creds.__dict__, indent=1, default=str)
