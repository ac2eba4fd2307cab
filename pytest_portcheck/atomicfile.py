"""The one way every report file is written: a whole new file, or the old one untouched.

Each writer (JSON report, HTML page, Markdown summary, snapshot inventory, the xdist shared
results) goes through ``write_atomically``: a temporary file with an unguessable name is created
exclusively (``O_EXCL | O_NOFOLLOW``) in the destination's own directory, written, flushed to disk
and renamed over the destination (keeping the mode of the file it replaces, so a report made private
stays private). Another local user cannot pre-create or symlink the temporary
name, two runs writing one destination never share a temporary file, and a failed or interrupted
write (disk full, ``ulimit -f``, Ctrl-C) leaves the previous file whole and no temporary behind.

A destination that is a FIFO or a character device (``/dev/null``, ``/dev/stdout``) is written
through, as a shell redirection would; a symlink is replaced, never followed, unless it points at
such a device and belongs to us or to root (``/dev/stdout`` is one). Directories, block devices and
sockets are refused. Imports only ``os`` and ``stat``, which every Python start has loaded: ``portcheck
scan --json FILE`` pays nothing for it (no pathlib, typing or contextlib); paths are handled as text.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import TextIO


class WriteError(Exception):
    """A file that cannot be written; the message names the file and the problem."""


def _special_target(path: str) -> bool:
    """True when ``path`` is a FIFO or character device to write through rather than replace."""
    try:
        link = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(link.st_mode):
        if link.st_uid not in (0, os.geteuid()):
            return False  # someone else's link: replace it, never write where it points
        try:
            link = os.stat(path)
        except OSError:
            return False
    mode = link.st_mode
    if stat.S_ISDIR(mode):
        raise WriteError(f"{path}: is a directory: give a file name")
    if stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise WriteError(f"{path}: is a block device or a socket: give a regular file")
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _problem(path: str, exc: OSError) -> WriteError:
    return WriteError(f"{path}: cannot write: {exc.strerror or exc}")


def _create_temporary(directory: str, name: str) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _attempt in range(16):
        # os.urandom as secrets.token_hex uses it, without importing secrets (hmac, hashlib: ~6 ms a start)
        candidate = os.path.join(directory, f".{name}.{os.urandom(8).hex()}.tmp")
        try:
            return os.open(candidate, flags, 0o666), candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")  # pragma: no cover - 2**64 names


def check_writable(destination: str | Path) -> None:
    """Raise WriteError now if ``destination`` could not be written later (checked before a scan)."""
    path = _text(destination)
    if _special_target(path):
        if stat.S_ISFIFO(os.stat(path).st_mode):
            return  # opening a FIFO would wait for its reader
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC))
        except OSError as exc:
            raise _problem(path, exc) from None
        return
    directory = _parent(path)
    if not os.path.isdir(directory):
        raise WriteError(f"{path}: cannot write: the directory {directory} does not exist")
    try:
        descriptor, temporary = _create_temporary(directory, os.path.basename(path))
    except OSError as exc:
        raise _problem(path, exc) from None
    os.close(descriptor)
    os.unlink(temporary)


def write_atomically(destination: str | Path, write: Callable[[TextIO], None]) -> None:
    """Call ``write`` with a text stream whose content replaces ``destination`` only once complete."""
    path = _text(destination)
    if _special_target(path):
        try:
            flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC
            with open(os.open(path, flags), "w", encoding="utf-8") as stream:
                write(stream)
        except OSError as exc:
            raise _problem(path, exc) from None
        return
    try:
        descriptor, temporary = _create_temporary(_parent(path), os.path.basename(path))
    except OSError as exc:
        raise _problem(path, exc) from None
    try:
        _keep_mode(path, descriptor)
        with open(descriptor, "w", encoding="utf-8") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.rename(temporary, path)
    except BaseException as exc:  # Ctrl-C included: never leave the temporary file behind
        try:  # noqa: SIM105 - contextlib.suppress would import contextlib for this alone
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _problem(path, exc) from None
        raise
    _sync_directory(_parent(path))


def _keep_mode(path: str, descriptor: int) -> None:
    """A report someone made private (chmod 600) stays private when it is replaced."""
    try:
        previous = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(previous.st_mode):
        os.fchmod(descriptor, stat.S_IMODE(previous.st_mode))


def write_text_atomically(destination: str | Path, text: str) -> None:
    def write(stream: TextIO) -> None:
        stream.write(text)

    write_atomically(destination, write)


def _text(destination: str | Path) -> str:
    """The destination as text, without the trailing slashes ``Path`` would drop."""
    text = os.fspath(destination)
    return text.rstrip("/") or text


def _parent(path: str) -> str:
    """The directory ``path`` is in, as ``Path(path).parent`` names it (``.`` for a bare name)."""
    return os.path.dirname(path) or "."


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable; some file systems cannot, which changes nothing visible."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
