"""Same-host fast path: array payloads in shared-memory segments the user owns.

When the backend and its client run on one machine under one user (the embedded
default: Blender starts ``facecast serve`` on loopback), large arrays need not cross
the TCP stack. The sender copies each payload into a segment — a file under
``/dev/shm`` created ``O_CREAT | O_EXCL`` with mode 0600 — and the signed message
carries a descriptor ``[dtype, shape, nbytes, [segment, slot, generation, mac]]``
instead of the bytes; ``mac`` is a keyed BLAKE3 hash of the payload. The receiver
opens the segment (refusing anything not a regular 0600 file of its own user), copies
the bytes into private memory and verifies the hash *of the copy*, so a writer cannot
change them after the check. It then tells the sender (a ``release`` message) which
slots it has copied, and the sender reuses them: page faults on fresh segments cost
more than the copy. Segments are unlinked when the connection ends; the names carry
the owner's pid, so a later run reclaims those of a process that died
(:func:`sweep_stale`). The threat model is argued in ``shared/PROTOCOL.md``.

Pure Python + numpy + blake3 (runs in Blender's Python). Linux only: elsewhere
:func:`available` is False and everything travels inline as before.
"""

from __future__ import annotations

import hmac
import itertools
import mmap
import os
import re
import secrets
import stat
import sys
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ProtocolError
from ..processes import pid_alive
from .arrays import check_descriptor

try:
    import blake3 as _blake3
except ImportError:  # pragma: no cover - the wheel ships for every platform we support
    _blake3 = None

SHM_DIR = Path("/dev/shm")
#: ``facecast-<uid>-<pid namespace>-<pid>-<32 hex>``: whose, which process, random part.
NAME_RE = re.compile(r"^facecast-(\d{1,10})-(\d{1,20})-(\d{1,10})-([0-9a-f]{32})$")
#: Payloads smaller than this travel inline: a segment round trip costs more.
INLINE_BELOW = 64 * 1024
PROBE_BYTES = 32
PAGE = mmap.PAGESIZE


def available(directory: Path = SHM_DIR) -> bool:
    """Whether this machine can use the fast path (Linux, a writable /dev/shm, blake3)."""
    return (sys.platform.startswith("linux") and _blake3 is not None
            and directory.is_dir() and os.access(directory, os.W_OK | os.X_OK))


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def new_name() -> str:
    return (f"facecast-{os.geteuid()}-{_pid_namespace()}-{os.getpid()}-"
            f"{secrets.token_hex(16)}")


def payload_key(key: bytes) -> bytes:
    """The 32-byte BLAKE3 key for payload hashes, separate from the message MAC's key."""
    import hashlib

    return hashlib.sha256(b"facecast-shm-payload" + key).digest()


def _mac(key: bytes, data: Any) -> bytes:
    assert _blake3 is not None
    return _blake3.blake3(data, key=key).digest()


def _create(directory: Path, size: int) -> tuple[str, int]:
    """A new 0600 segment of ``size`` bytes: ``(name, fd)``."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
    name = new_name()
    fd = os.open(directory / name, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        if size:
            # Reserve the pages now: writing to a mapped page of a full tmpfs would be
            # SIGBUS, this is ENOSPC (and the payload goes inline instead).
            os.posix_fallocate(fd, 0, size)
    except BaseException:
        os.close(fd)
        (directory / name).unlink(missing_ok=True)
        raise
    return name, fd


def open_checked(directory: Path, name: str) -> tuple[int, int]:
    """Open a peer's segment read-only: ``(fd, size)``. Only a regular file of this user
    with no group/other permissions, reached without following links, is accepted."""
    match = NAME_RE.match(name) if isinstance(name, str) else None
    if match is None or int(match.group(1)) != os.geteuid():
        raise ProtocolError(f"shared-memory segment name {str(name)[:80]!r} is not one of "
                            "this user's Facecast segments", "use the Facecast client",
                            code="bad_shm")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
    try:
        fd = os.open(directory / name, flags)
    except OSError as exc:
        raise ProtocolError(f"shared-memory segment {name} cannot be opened ({exc.strerror})",
                            "the sender may have ended; retry the job", code="bad_shm") from exc
    st = os.fstat(fd)
    if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid()
            or stat.S_IMODE(st.st_mode) & 0o077):
        os.close(fd)
        raise ProtocolError(f"shared-memory segment {name} is not a private file of this "
                            "user", "remove it; Facecast creates segments with mode 0600",
                            code="bad_shm")
    return fd, st.st_size


@dataclass(frozen=True)
class ShmRef:
    """A payload in a segment, as the signed header describes it."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    segment: str
    slot: int
    generation: int
    mac: bytes

    def descriptor(self) -> list:
        return [self.dtype, list(self.shape), self.nbytes,
                [self.segment, self.slot, self.generation, self.mac]]

    @classmethod
    def from_descriptor(cls, desc: Any) -> ShmRef:
        """Validate an untrusted 4-element descriptor (the segment is not opened here)."""
        dtype, shape, nbytes = check_descriptor(desc[:3])
        ref = desc[3]
        if not (isinstance(ref, list | tuple) and len(ref) == 4
                and isinstance(ref[0], str) and len(ref[0]) <= 80
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32
                        for v in ref[1:3])
                and isinstance(ref[3], bytes) and len(ref[3]) == 32):
            raise ProtocolError("shared-memory descriptor is not [segment, slot, "
                                "generation, mac]", "use the Facecast client", code="malformed")
        return cls(dtype.str, shape, nbytes, ref[0], ref[1], ref[2], ref[3])


@dataclass
class _Slot:
    index: int
    name: str
    fd: int
    size: int
    view: np.ndarray  # uint8 view of the whole mapping
    mapping: mmap.mmap
    generation: int = 0
    busy: bool = False


class ShmArena:
    """The sender's pool of segments for one connection (thread-safe).

    :meth:`share` copies an array into a free slot and returns its :class:`ShmRef`, or
    None when the array is small or the pool is at its byte budget (the caller then
    sends it inline: the fast path never makes a sender wait). :meth:`release` frees
    slots the peer has copied; :meth:`close` unlinks everything.
    """

    def __init__(self, key: bytes, budget_bytes: int, directory: Path = SHM_DIR) -> None:
        self._key = payload_key(key)
        self.budget = int(budget_bytes)
        self.directory = directory
        self._slots: dict[int, _Slot] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._closed = False
        self.used_bytes = 0

    def share(self, array: Any) -> ShmRef | None:
        arr = np.asarray(array)
        if arr.nbytes < INLINE_BELOW:
            return None
        from .arrays import to_wire

        desc, buf = to_wire(arr)
        slot = self._take(desc[2])
        if slot is None:
            return None
        source = np.frombuffer(buf, np.uint8)
        np.copyto(slot.view[:desc[2]], source)
        mac = _mac(self._key, source)  # the source is the one still in this core's cache
        return ShmRef(desc[0], tuple(desc[1]), desc[2], slot.name, slot.index,
                      slot.generation, mac)

    def _take(self, nbytes: int) -> _Slot | None:
        size = -(-nbytes // PAGE) * PAGE
        with self._lock:
            if self._closed:
                return None
            free = [s for s in self._slots.values() if not s.busy and nbytes <= s.size]
            if free:
                slot = min(free, key=lambda s: s.size)
                if slot.size <= 2 * size:
                    slot.busy = True
                    slot.generation = (slot.generation + 1) % 2**32
                    return slot
            # Make room: drop idle slots of the wrong size until the new one fits.
            for idle in sorted((s for s in self._slots.values() if not s.busy),
                               key=lambda s: s.size):
                if self.used_bytes + size <= self.budget:
                    break
                self._drop(idle)
            if self.used_bytes + size > self.budget:
                return None
            try:
                name, fd = _create(self.directory, size)
                mapping = mmap.mmap(fd, size)
            except OSError:
                return None  # /dev/shm full or gone: send inline
            slot = _Slot(next(self._ids), name, fd, size, np.frombuffer(mapping, np.uint8),
                         mapping, generation=1, busy=True)
            self._slots[slot.index] = slot
            self.used_bytes += size
            return slot

    def release(self, slots: Any) -> int:
        """Free ``[[slot, generation], ...]`` the peer copied; returns how many matched."""
        freed = 0
        if not isinstance(slots, list):
            return 0
        with self._lock:
            for item in slots[:4096]:
                if not (isinstance(item, list | tuple) and len(item) == 2):
                    continue
                slot = self._slots.get(item[0]) if isinstance(item[0], int) else None
                if slot is not None and slot.busy and slot.generation == item[1]:
                    slot.busy = False
                    freed += 1
        return freed

    def _drop(self, slot: _Slot) -> None:
        self._slots.pop(slot.index, None)
        self.used_bytes -= slot.size
        del slot.view
        try:
            slot.mapping.close()
        except BufferError:  # a view is still alive somewhere; the GC unmaps it later
            pass
        os.close(slot.fd)
        (self.directory / slot.name).unlink(missing_ok=True)

    def close(self) -> None:
        """Unlink every segment (the peer's open mappings stay valid until it drops them)."""
        with self._lock:
            self._closed = True
            for slot in list(self._slots.values()):
                self._drop(slot)

    def names(self) -> list[str]:
        with self._lock:
            return [s.name for s in self._slots.values()]


class ShmReader:
    """The receiver's side: copies payloads out of peers' segments.

    By default it maps each segment once (cached) and copies from the mapping, the
    fastest way. ``pread=True`` reads with ``preadv`` instead (about 3x slower here): a
    peer that truncates a segment then causes a short read, not the SIGBUS a mapping
    would raise. The server reads its clients' segments that way, so no client can
    crash it; a client trusts its own backend with the faster path.
    """

    def __init__(self, key: bytes, directory: Path = SHM_DIR, max_maps: int = 256, *,
                 pread: bool = False) -> None:
        self._key = payload_key(key)
        self.directory = directory
        self._maps: OrderedDict[str, mmap.mmap] = OrderedDict()
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._max = max_maps
        self._pread = pread
        self._buffers = _BufferPool()

    def _map(self, name: str) -> mmap.mmap:
        cached = self._maps.get(name)
        if cached is not None:
            self._maps.move_to_end(name)
            return cached
        fd, size = open_checked(self.directory, name)
        try:
            if size == 0:
                raise ProtocolError(f"shared-memory segment {name} is empty",
                                    "use the Facecast client", code="bad_shm")
            mapping = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self._maps[name] = mapping
        while len(self._maps) > self._max:
            _, old = self._maps.popitem(last=False)
            old.close()
        return mapping

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is not None:
            self._fds.move_to_end(name)
            return fd
        fd, _ = open_checked(self.directory, name)
        self._fds[name] = fd
        while len(self._fds) > self._max:
            os.close(self._fds.popitem(last=False)[1])
        return fd

    def read(self, ref: ShmRef) -> np.ndarray:
        """The payload as a private, read-only array whose hash matched. The declared
        size is checked against the segment before any memory is taken for it."""
        if self._pread:
            fd = self._fd(ref.segment) if ref.nbytes else -1
            size = os.fstat(fd).st_size if ref.nbytes else 0
        else:
            mapping = self._map(ref.segment)
            size = len(mapping)
        if ref.nbytes > size:
            self.forget(ref.segment)
            raise ProtocolError(f"shared-memory segment {ref.segment} holds {size} bytes, "
                                f"the message says {ref.nbytes}", "use the Facecast client",
                                code="bad_shm")
        flat = self._buffers.take(ref.nbytes)
        out = flat.view(np.dtype(ref.dtype)).reshape(ref.shape) if ref.nbytes else \
            np.empty(ref.shape, np.dtype(ref.dtype))
        if self._pread:
            got = os.preadv(fd, [flat], 0) if ref.nbytes else 0
            if got != ref.nbytes:  # truncated since the check
                self.forget(ref.segment)
                raise ProtocolError(f"shared-memory segment {ref.segment} holds {got} of "
                                    f"{ref.nbytes} bytes", "use the Facecast client",
                                    code="bad_shm")
        else:
            flat[:] = np.frombuffer(mapping, np.uint8, count=ref.nbytes)
        # Verify the private copy, not the mapping: the bytes checked are the bytes used.
        if not hmac.compare_digest(_mac(self._key, flat), ref.mac):
            raise ProtocolError(f"shared-memory payload in {ref.segment} failed its integrity "
                                "check", "the segment was changed after it was sent; retry "
                                "the job", code="bad_shm")
        out.flags.writeable = False
        self._buffers.lend(out, flat)
        return out

    def resolve(self, arrays: list, max_bytes: int | None = None) -> list[np.ndarray]:
        """Replace each :class:`ShmRef` by its payload. Before anything is read, the
        message's bytes (inline and in segments together) are held to ``max_bytes`` and
        each segment may be named once."""
        refs = [a for a in arrays if isinstance(a, ShmRef)]
        names = [r.segment for r in refs]
        if len(set(names)) != len(names):
            raise ProtocolError("a message names one shared-memory segment twice",
                                "use the Facecast client", code="bad_shm")
        total = sum(int(a.nbytes) for a in arrays)
        if max_bytes is not None and total > max_bytes:
            raise ProtocolError(f"the message's arrays are {total} bytes (limit {max_bytes})",
                                "send smaller messages", code="too_large")
        return [self.read(a) if isinstance(a, ShmRef) else a for a in arrays]

    def forget(self, name: str) -> None:
        mapping = self._maps.pop(name, None)
        if mapping is not None:
            mapping.close()
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for mapping in self._maps.values():
            mapping.close()
        for fd in self._fds.values():
            os.close(fd)
        self._maps.clear()
        self._fds.clear()


def slots_of(arrays: list) -> list[list[int]]:
    """``[[slot, generation], ...]`` of a message's shared-memory payloads: what the
    receiver releases once it has copied them (or given up on them)."""
    return [[a.slot, a.generation] for a in arrays if isinstance(a, ShmRef)]


class _BufferPool:
    """Private receive buffers, reused once the application has dropped every view of
    an array: a fresh 2 MiB allocation costs its page faults again each frame (about
    0.6 ms here, three times the copy itself)."""

    MAX_BYTES = 128 * 1024 * 1024

    def __init__(self) -> None:
        self._free: dict[int, list[np.ndarray]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> np.ndarray:
        with self._lock:
            free = self._free.get(nbytes)
            if free:
                self._bytes -= nbytes
                return free.pop()
        return np.empty(nbytes, np.uint8)

    def lend(self, array: np.ndarray, buffer: np.ndarray) -> None:
        if buffer.nbytes:
            weakref.finalize(array, self._give_back, buffer)

    def _give_back(self, buffer: np.ndarray) -> None:
        with self._lock:
            if self._bytes + buffer.nbytes <= self.MAX_BYTES:
                self._free.setdefault(buffer.nbytes, []).append(buffer)
                self._bytes += buffer.nbytes


# -- negotiation: prove both ends share a host and a user -----------------------------

def write_probe(directory: Path = SHM_DIR) -> tuple[str, bytes]:
    """A 0600 segment holding a random nonce; the peer must read it back in WELCOME."""
    nonce = secrets.token_bytes(PROBE_BYTES)
    name, fd = _create(directory, 0)
    try:
        os.write(fd, nonce)
    finally:
        os.close(fd)
    return name, nonce


def read_probe(name: Any, directory: Path = SHM_DIR) -> bytes:
    """Read a peer's probe (refused unless it is this user's private segment)."""
    fd, size = open_checked(directory, name)
    try:
        if size != PROBE_BYTES:
            raise ProtocolError("shared-memory probe has the wrong size",
                                "use the Facecast client", code="bad_shm")
        return os.pread(fd, PROBE_BYTES, 0)
    finally:
        os.close(fd)


def remove(name: str, directory: Path = SHM_DIR) -> None:
    if NAME_RE.match(name):
        (directory / name).unlink(missing_ok=True)


def sweep_stale(directory: Path = SHM_DIR) -> int:
    """Unlink this user's segments left by processes that died (same pid namespace);
    returns how many. Called when a server or client starts."""
    if not available(directory):
        return 0
    uid, ns, removed = os.geteuid(), _pid_namespace(), 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        match = NAME_RE.match(entry.name)
        if match is None or int(match.group(1)) != uid or int(match.group(2)) != ns:
            continue
        if pid_alive(int(match.group(3))):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_uid == uid:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass
    return removed

