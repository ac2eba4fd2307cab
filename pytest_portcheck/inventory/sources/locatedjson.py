"""JSON whose objects remember where they start, so that a Terraform resource can be given its line.

The standard library's decoder, with its pure-Python scanner, builds each object as a
``LocatedObject``: a dict that also holds the offset of its ``{`` in the text; ``line_at`` turns an
offset into a 1-based line. (The C scanner calls no Python per object, so it cannot record this.)
Imports only the standard library.
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable
from typing import Any

_ObjectParser = Callable[..., tuple[dict[str, Any], int]]
_json_object: _ObjectParser = getattr(json.decoder, "JSONObject")  # noqa: B009 - not in the type stubs


class LocatedObject(dict[str, Any]):
    """A JSON object and the offset of its opening brace."""

    __slots__ = ("offset",)

    def __init__(self, pairs: dict[str, Any], offset: int) -> None:
        super().__init__(pairs)
        self.offset = offset


def _parse_object(
    s_and_end: tuple[str, int],
    strict: bool,
    scan_once: Any,
    object_hook: Any,
    object_pairs_hook: Any,
    memo: dict[str, str] | None = None,
) -> tuple[LocatedObject, int]:
    pairs, end = _json_object(s_and_end, strict, scan_once, None, None, memo)
    return LocatedObject(pairs, s_and_end[1] - 1), end


def load_located(text: str) -> Any:
    """Parse JSON text; every object in it is a ``LocatedObject``. Raises ``json.JSONDecodeError``."""
    decoder = json.JSONDecoder()
    decoder.parse_object = _parse_object  # type: ignore[attr-defined]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    return decoder.decode(text)


class LineIndex:
    """Offsets to 1-based lines, by a binary search over the newlines of the text."""

    __slots__ = ("_newlines",)

    def __init__(self, text: str) -> None:
        self._newlines = [match.start() for match in re.finditer("\n", text)]

    def line_at(self, offset: int) -> int:
        return bisect.bisect_left(self._newlines, offset) + 1
