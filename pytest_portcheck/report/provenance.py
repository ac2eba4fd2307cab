"""Where a report comes from, and whether it is intact: its run id and its signature.

A *run* is one scan of an inventory, however many shards and vantages it took: every report
``portcheck scan`` writes carries the run's id (``--run-id``; else ``PORTCHECK_RUN_ID``; else the CI's
own id, ``GITHUB_RUN_ID``-``GITHUB_RUN_ATTEMPT`` on GitHub Actions; else a new one, printed), and the
judge takes one run and never mixes two.

With a shared secret in ``PORTCHECK_REPORT_KEY``, writers sign a report with HMAC-SHA256 over its
*canonical form* — the parsed document without ``signature``, dumped with sorted keys, ``(",", ":")``
separators and ASCII only — and the judge checks it with ``hmac.compare_digest``. The signature is the
last key of the file: ``"signature": {"algorithm": "hmac-sha256", "value": HEX}``.

Must not import pytest or anything of the package: a plain ``portcheck scan --json`` imports this
module, so ``os`` and ``re`` at import, and json, hmac and hashlib only when a key is set.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, TextIO

KEY_VARIABLE = "PORTCHECK_REPORT_KEY"
RUN_ID_VARIABLE = "PORTCHECK_RUN_ID"
ALGORITHM = "hmac-sha256"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class RunIdError(ValueError):
    """A run id that cannot be one; the message names the fix."""


def check_run_id(text: str, where: str = "--run-id") -> str:
    if not _RUN_ID.fullmatch(text):
        raise RunIdError(
            f"{where} {text[:60]!r}: a run id is 1-128 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return text


def run_id_for(given: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """(run id, where it came from) for a scan: given, PORTCHECK_RUN_ID, the GitHub Actions run and
    attempt, or a new one (time and randomness: ``20261127T003801Z-9f2c41d0``). RunIdError when bad."""
    if given is not None:
        return check_run_id(given), "--run-id"
    if environ.get(RUN_ID_VARIABLE):
        return check_run_id(environ[RUN_ID_VARIABLE], RUN_ID_VARIABLE), RUN_ID_VARIABLE
    github = environ.get("GITHUB_RUN_ID")
    if github:
        attempt = environ.get("GITHUB_RUN_ATTEMPT") or "1"
        return check_run_id(f"{github}-{attempt}", "GITHUB_RUN_ID-GITHUB_RUN_ATTEMPT"), "GitHub Actions run"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{os.urandom(4).hex()}", "generated: give it to the other scans of this run with --run-id"


def report_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The signing key (PORTCHECK_REPORT_KEY), or None when reports are not signed."""
    value = (os.environ if environ is None else environ).get(KEY_VARIABLE)
    return value.encode() if value else None


def canonical(document: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the document without its signature, in one fixed spelling."""
    import json

    unsigned = {key: value for key, value in document.items() if key != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def signature_of(document: Mapping[str, Any], key: bytes) -> str:
    import hashlib
    import hmac

    return hmac.new(key, canonical(document), hashlib.sha256).hexdigest()


def signed(text: str, key: bytes) -> str:
    """A report's JSON text with its signature added as the last key (the text is our own writer's:
    an object ending in ``}``)."""
    import json

    signature = {"algorithm": ALGORITHM, "value": signature_of(json.loads(text), key)}
    body = text.rstrip()
    assert body.endswith("}")
    return body[:-1].rstrip() + ',\n "signature": ' + json.dumps(signature) + "\n}\n"


def signing_writer(write: Callable[[TextIO], None], key: bytes | None) -> Callable[[TextIO], None]:
    """``write`` as it is without a key; with one, the report written to memory, signed, then written."""
    if key is None:
        return write

    def write_signed(stream: TextIO) -> None:
        import io

        buffer = io.StringIO()
        write(buffer)
        stream.write(signed(buffer.getvalue(), key))

    return write_signed


def signature_problem(document: Mapping[str, Any], key: bytes) -> str | None:
    """Why the document's signature does not prove it was written by a holder of ``key`` unchanged
    (None when it does)."""
    import hmac

    signature = document.get("signature")
    if signature is None:
        return f"it is not signed, and {KEY_VARIABLE} is set: sign it (set the key where it is written)"
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
        return f"its signature is not an {ALGORITHM} signature"
    value = signature.get("value")
    expected = signature_of(document, key).encode()
    if not isinstance(value, str) or not hmac.compare_digest(value.encode("utf-8", "replace"), expected):
        return "its signature does not match: it was altered, or signed with another key"
    return None
