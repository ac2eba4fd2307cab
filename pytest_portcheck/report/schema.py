"""What a JSON report (version 1, and a shard report, version 2) must hold, checked field by field.

A report file can come from anywhere (an old run, another tool, a hostile user), so ``portcheck
diff``, ``portcheck report`` and the xdist shared results check its shape here first: every problem
becomes a ``ReportProblem`` naming the field (``results[3].port``) and what is wrong, never a
traceback. ``parse_report_json`` also refuses ``Infinity``/``NaN`` and numbers too large for a float,
and nesting too deep for the decoder. Imports only the standard library, the engine's enums, the
versions of the report model, and the reader of a plan's port runs (``ports``).
Must not import pytest, yaml or the probes.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pytest_portcheck.engine.model import PortState
from pytest_portcheck.ports import runs_of_spec
from pytest_portcheck.report.model import REPORT_VERSION, SHARD_REPORT_VERSION

_STATES = frozenset(state.value for state in PortState)
_PROTOCOLS = frozenset({"tcp", "udp"})


class ReportProblem(ValueError):
    """The document is not a valid report; the message names the field and the problem."""


def _refuse_constant(name: str) -> float:
    raise ReportProblem(f"{name} is not a number a report can hold")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ReportProblem(f"the number {text[:40]} is too large")
    return value


def parse_report_json(text: str) -> Any:
    """``json.loads`` that refuses non-finite numbers; a deeply nested document is a ReportProblem."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ReportProblem("nested too deeply to be a report") from None
    except json.JSONDecodeError as exc:
        raise ReportProblem(f"not JSON: {exc}") from None


def _where(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else key)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    names = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list"}
    return names.get(type(value), "an object" if isinstance(value, dict) else type(value).__name__)


Check = Callable[[Any, str], None]


def _text(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise ReportProblem(f"{where} must be text, not {_kind(value)}")


def _optional_text(value: Any, where: str) -> None:
    if value is not None:
        _text(value, where)


def _boolean(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise ReportProblem(f"{where} must be true or false, not {_kind(value)}")


def _whole(minimum: int, maximum: int | None = None) -> Check:
    def check(value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ReportProblem(f"{where} must be a whole number, not {_kind(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = "" if maximum is None else f" to {maximum}"
            raise ReportProblem(f"{where} must be {minimum}{upper}{'' if upper else ' or more'}, not {value}")

    return check


def _number(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        shown = _kind(value) if not isinstance(value, (int, float)) or isinstance(value, bool) else value
        raise ReportProblem(f"{where} must be a number of at least 0, not {shown}")


def _positive(value: Any, where: str) -> None:
    _number(value, where)
    if value == 0:
        raise ReportProblem(f"{where} must be more than 0")


def _optional_number(value: Any, where: str) -> None:
    if value is not None:
        _number(value, where)


def _choice(choices: frozenset[str]) -> Check:
    def check(value: Any, where: str) -> None:
        if value not in choices:
            shown = str(value)[:40]
            raise ReportProblem(f"{where} must be one of {', '.join(sorted(choices))}, not {shown!r}")

    return check


def _list_of(item: Check) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise ReportProblem(f"{where} must be a list, not {_kind(value)}")
        for index, element in enumerate(value):
            item(element, _where(where, index))

    return check


def _object(required: Mapping[str, Check], optional: Mapping[str, Check] | None = None) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise ReportProblem(f"{where or 'the document'} must be an object, not {_kind(value)}")
        for key, field_check in required.items():
            if key not in value:
                raise ReportProblem(f"{_where(where, key)} is missing")
            field_check(value[key], _where(where, key))
        for key, field_check in (optional or {}).items():
            if key in value:
                field_check(value[key], _where(where, key))

    return check


def _nullable(check: Check) -> Check:
    def nullable(value: Any, where: str) -> None:
        if value is not None:
            check(value, where)

    return nullable


_TLS = _object(
    {
        "version": _text, "cipher": _text, "subject": _text, "issuer": _text, "not_after": _text,
        "days_left": _whole(-(10**6), 10**6), "verified": _boolean,
    },
    {
        "below_minimum": _optional_text, "certificate_error": _optional_text,
        "fingerprint_sha256": _optional_text,
    },
)  # fmt: skip
_NAME_ANSWER = _object({"verified": _boolean}, {"name": _optional_text, "error": _optional_text})
_PROBE = _object(
    {"service": _text},
    {
        "evidence": _text, "product": _optional_text, "version": _optional_text, "tls": _nullable(_TLS),
        "auth": _optional_text, "error": _optional_text, "local_failure": _boolean,
        "auth_note": _optional_text, "names": _list_of(_NAME_ANSWER),
    },
)  # fmt: skip
_RESULT = _object(
    {
        "host": _text, "address": _optional_text, "proto": _choice(_PROTOCOLS), "port": _whole(0, 65535),
        "state": _choice(_STATES), "reason": _text,
    },
    {
        "service": _text, "latency_ms": _optional_number, "attempts": _whole(0), "probe": _nullable(_PROBE),
        "asked": _list_of(lambda value, where: _asked(value, where)),
    },
)  # fmt: skip
_FOUND = _object(
    {"address": _text, "state": _choice(_STATES), "reason": _text}, {"latency_ms": _optional_number}
)
_EXPECTATION = _object(
    {"host": _text, "target": _text, "expected": _text, "verdict": _text},
    {
        "nodeid": _text, "message": _text, "found": _list_of(_FOUND), "services": _list_of(_text),
        "line": _whole(0), "waiver": _nullable(_object({"until": _text, "reason": _text})),
        "silent": _list_of(_text),
    },
)  # fmt: skip
_SETTINGS = _object(
    {},
    {
        "timeout_s": _positive, "retries": _whole(0), "window": _whole(1),
        "max_rate": _nullable(_positive), "min_rate": _nullable(_positive),
    },
)  # fmt: skip
_QUALITY = _object(
    {"address": _text},
    {
        "rate_pps": _number, "drops": _whole(0), "retries": _whole(0), "reexaminations": _whole(0),
        "unresolved": _whole(0), "slowdowns": _whole(0), "limited": _boolean,
    },
)  # fmt: skip
_HOST = _object({"host": _text, "addresses": _list_of(_text)}, {"error": _optional_text})
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def _run_id(value: Any, where: str) -> None:
    """The run a report belongs to (see provenance): the judge takes one run, never two."""
    _text(value, where)
    if not _RUN_ID.fullmatch(value):
        raise ReportProblem(
            f"{where} {value[:40]!r} is not a run id (1-128 letters, digits, '.', '_', ':', '-')"
        )


_SIGNATURE = _object({"algorithm": _text, "value": _text})
_DOCUMENT = _object(
    {"results": _list_of(_RESULT)},
    {
        "command": _list_of(_text), "started": _text, "elapsed_s": _number, "interrupted": _boolean,
        "settings": _SETTINGS, "hosts": _list_of(_HOST), "expectations": _list_of(_EXPECTATION),
        "scan_quality": _list_of(_QUALITY), "run_id": _run_id, "signature": _SIGNATURE,
    },
)  # fmt: skip


def validate_report(document: Any) -> None:
    """Raise ReportProblem unless ``document`` has the shape of a version 1 report."""
    if not isinstance(document, dict):
        raise ReportProblem(f"the document must be a JSON object, not {_kind(document)}")
    version = document.get("version")
    if version == 2 and not isinstance(version, bool):
        raise ReportProblem(
            "a shard report (version 2) of 'portcheck scan --inventory': judge it with "
            "pytest --portcheck INVENTORY --portcheck-results REPORTS"
        )
    if version != REPORT_VERSION or isinstance(version, bool):
        raise ReportProblem(f"unsupported report version {str(version)[:20]!r} (this reads {REPORT_VERSION})")
    results = document.get("results")
    if isinstance(results, list) and all(_plain_result(result) for result in results):
        _DOCUMENT({**document, "results": []}, "")  # every result already passed the fast check
    else:
        _DOCUMENT(document, "")


_RESULT_KEYS = frozenset(
    {"host", "address", "proto", "port", "state", "reason", "service", "latency_ms", "attempts"}
)


def _plain_result(result: Any) -> bool:
    """The common case, checked in one pass (65,535 results take ~0.05 s instead of ~0.2 s): a result
    as portcheck writes it, without a probe. Anything else goes through the field-by-field check."""
    if type(result) is not dict or result.keys() != _RESULT_KEYS:
        return False
    port, attempts, latency = result["port"], result["attempts"], result["latency_ms"]
    address = result["address"]
    return (
        type(port) is int and 0 <= port <= 65535
        and type(attempts) is int and attempts >= 0
        and (latency is None or (type(latency) in (int, float) and latency >= 0))
        and (address is None or type(address) is str)
        and type(result["host"]) is str and type(result["reason"]) is str and type(result["service"]) is str
        and result["proto"] in _PROTOCOLS and result["state"] in _STATES
    )  # fmt: skip


def _exception(value: Any, where: str) -> None:
    """``[port, state, reason, latency_ms, attempts]``: a listed port of a shard report."""
    if not isinstance(value, list) or len(value) != 5:
        raise ReportProblem(f"{where} must be [port, state, reason, latency_ms, attempts]")
    _whole(0, 65535)(value[0], f"{where}[0]")
    _choice(_STATES)(value[1], f"{where}[1]")
    _text(value[2], f"{where}[2]")
    _optional_number(value[3], f"{where}[3]")
    _whole(0)(value[4], f"{where}[4]")


def _plan_row(value: Any, where: str) -> None:
    """``[address, timeout_s, retries, port runs]`` and, when the host has any, its requirements:
    one host of the inventory's plan. The runs are read here, so a bad one is this report's one error
    (naming the field), not a failure of every item judged from it."""
    if not isinstance(value, list) or len(value) not in (4, 5):
        raise ReportProblem(f"{where} must be [address, timeout_s, retries, ports(, requirements)]")
    _text(value[0], f"{where}[0]")
    _positive(value[1], f"{where}[1]")
    _whole(0)(value[2], f"{where}[2]")
    _text(value[3], f"{where}[3]")
    problem = _runs_problem(value[3])
    if problem is not None:
        raise ReportProblem(f"{where}[3]: {problem}")
    if len(value) == 5:
        _list_of(_requirement)(value[4], f"{where}[4]")


@functools.lru_cache(maxsize=256)
def _runs_problem(spec: str) -> str | None:
    """Why a host's port runs cannot be read, or None; a fleet's hosts share a few specs (every
    host of every one of 64 shard reports may say ``1-65535/tcp``), so each is read once."""
    try:
        runs_of_spec(spec)
    except ValueError as exc:
        return str(exc)
    return None


def _requirement(value: Any, where: str) -> None:
    """``[proto, port, vantage, service, min_version, verify, expires_in_days, auth]`` (plan.Requirement)."""
    if not isinstance(value, list) or len(value) != 8:
        raise ReportProblem(
            f"{where} must be [proto, port, vantage, service, min_version, verify, expires_in_days, auth]"
        )
    _choice(_PROTOCOLS)(value[0], f"{where}[0]")
    _whole(1, 65535)(value[1], f"{where}[1]")
    for index in (2, 3, 4, 7):
        _optional_text(value[index], f"{where}[{index}]")
    _boolean(value[5], f"{where}[5]")
    _nullable(_whole(0))(value[6], f"{where}[6]")


def _asked(value: Any, where: str) -> None:
    """``[service, min_version, verify, expires_in_days, auth, name]``: a requirement a probe was run for."""
    if not isinstance(value, list) or len(value) != 6:
        raise ReportProblem(f"{where} must be [service, min_version, verify, expires_in_days, auth, name]")
    _text(value[0], f"{where}[0]")
    for index in (1, 4, 5):
        _optional_text(value[index], f"{where}[{index}]")
    _boolean(value[2], f"{where}[2]")
    _nullable(_whole(0))(value[3], f"{where}[3]")


_SHARD = _object({"digest": _text, "index": _whole(1), "count": _whole(1)}, {"vantage": _optional_text})


def _address(value: Any, where: str) -> None:
    """``[host, address, proto, usual state, reason, count, exceptions]``: one address of a shard."""
    if not isinstance(value, list) or len(value) != 7:
        raise ReportProblem(f"{where} must be [host, address, proto, usual, reason, count, exceptions]")
    _text(value[0], f"{where}[0]")
    _text(value[1], f"{where}[1]")
    _choice(_PROTOCOLS)(value[2], f"{where}[2]")
    _choice(_STATES)(value[3], f"{where}[3]")
    _text(value[4], f"{where}[4]")
    _nullable(_whole(0))(value[5], f"{where}[5]")
    _list_of(_exception)(value[6], f"{where}[6]")


_SERVICE = _object(
    {"address": _text, "proto": _choice(_PROTOCOLS), "port": _whole(0, 65535), "probe": _PROBE},
    {"asked": _list_of(_asked)},
)
_SHARD_DOCUMENT = _object(
    {"shard": _SHARD, "plan": _list_of(_plan_row), "hosts": _list_of(_HOST), "addresses": _list_of(_address)},
    {
        "command": _list_of(_text), "started": _text, "elapsed_s": _number, "interrupted": _boolean,
        "settings": _SETTINGS, "services": _list_of(_SERVICE), "run_id": _run_id, "signature": _SIGNATURE,
    },
)  # fmt: skip


def validate_shard_report(document: Any) -> None:
    """Raise ReportProblem unless ``document`` has the shape of a version 2 (shard) report."""
    if not isinstance(document, dict) or document.get("version") != SHARD_REPORT_VERSION:
        raise ReportProblem(f"not a version {SHARD_REPORT_VERSION} (shard) report")
    _SHARD_DOCUMENT(document, "")
    shard = document["shard"]
    if shard["index"] > shard["count"]:
        raise ReportProblem(f"shard.index {shard['index']} is more than shard.count {shard['count']}")
