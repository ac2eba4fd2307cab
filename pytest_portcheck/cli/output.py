"""Where the command writes: its standard streams, and the files it is asked to write.

``Output`` wraps a standard stream whose reader may leave (``| head -1``) or whose device may fail
(``> /dev/full``); ``check_output`` refuses a file that cannot be written before any scan starts.
Must not import anything of the package but ``atomicfile``: every command's start-up loads it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pytest_portcheck.atomicfile import WriteError, check_writable

if TYPE_CHECKING:
    from typing import TextIO


class OutputPathError(Exception):
    """An output file that cannot be written, found before scanning: a usage error."""


def check_output(path: str | None) -> None:
    if path and path != "-":
        try:
            check_writable(path)
        except WriteError as exc:
            raise OutputPathError(str(exc)) from None


class Output:
    """A standard stream whose reader may leave, or whose device may fail.

    ``portcheck scan … --json out.json | head -1`` closes the pipe after one line: the command keeps
    working (out.json is still written whole), prints nothing more and keeps its exit status. Any
    other failure (``> /dev/full``) is remembered as ``problem``: the command still finishes its work,
    then exits 2 naming it. Either way later output is dropped and the descriptor is pointed at
    /dev/null, so that the interpreter's own flush at exit cannot fail (and print a traceback) again.
    """

    def __init__(self, stream: TextIO | None, name: str) -> None:
        self.stream = stream
        self.name = name
        self.problem: str | None = None
        self.dropping = stream is None  # a descriptor closed before we started: nobody reads

    def write(self, text: str) -> int:
        if not self.dropping and self.stream is not None:
            try:
                self.stream.write(text)
            except OSError as exc:
                self._lost(exc)
        return len(text)

    def flush(self) -> None:
        if not self.dropping and self.stream is not None:
            try:
                self.stream.flush()
            except OSError as exc:
                self._lost(exc)

    def isatty(self) -> bool:
        return not self.dropping and self.stream is not None and self.stream.isatty()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding...: the stream's own
        return getattr(self.stream, name)

    def _lost(self, exc: OSError) -> None:
        self.dropping = True
        if not isinstance(exc, BrokenPipeError):  # a reader that leaves has had what it wanted
            self.problem = f"{self.name}: cannot write: {exc.strerror or exc}"
        try:
            devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.dup2(devnull, self.stream.fileno())  # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError):  # not a descriptor (a test's StringIO)
            pass
        finally:
            os.close(devnull)
