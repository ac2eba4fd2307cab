"""The JSON report format, declared once: version 1 (every result listed: ``portcheck scan --json``,
``pytest --portcheck-report``) and version 2 (the shard report of ``portcheck scan --inventory``).

``REPORT`` and ``SHARD_REPORT`` are trees of field descriptors (``fields``): every key, its kind,
whether it is required, nullable, and the change that added it. They check a parsed document
(``validate_report``, ``validate_shard_report``), and docs/reports.md's field tables are generated from
them (``field_table``; tests/test_docs.py keeps the page in step). A report file can come from anywhere
(an old run, another tool, a hostile user): every problem is one ``ReportProblem`` naming the field by
its JSON path (``$.results[3].port: expected an integer 0 to 65535, not "x"``), never a traceback.
``parse_report_json`` refuses ``NaN``/``Infinity`` and numbers too large for a float (naming where
they sit), and nesting too deep for the decoder.

Optional keys are what was added after the first reports: a reader takes its default when one is
missing, so reports of older versions still read back. A new optional key is one ``Field`` line here.
Imports the standard library, ``fields``, the engine's enums, the report model's versions and the
reader of a plan's port runs (``ports``).
Must not import pytest, yaml or the probes' I/O (their data model is what a probe entry reads into).
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import sys
from typing import Any

from pytest_portcheck.engine.model import AddressQuality, PortState, ProbeResult, Resolution
from pytest_portcheck.judge.findings import FindingKind
from pytest_portcheck.ports import Protocol, runs_of_spec
from pytest_portcheck.probes.model import NameAnswer, ServiceInfo, TlsInfo
from pytest_portcheck.report.fields import (
    Boolean,
    Checked,
    Choice,
    Field,
    Integer,
    ListOf,
    Number,
    Obj,
    Pattern,
    ReportProblem,
    Row,
    Text,
    field_rows,
    shown,
    walk,
)
from pytest_portcheck.report.model import REPORT_VERSION, SHARD_REPORT_VERSION

__all__ = [
    "REPORT",
    "SHARD_REPORT",
    "ReportProblem",
    "field_table",
    "parse_report_json",
    "validate_report",
    "validate_shard_report",
]

# --- reading the JSON text ------------------------------------------------------------------------


class _Refused(float):
    """A number the JSON text holds that no report can (NaN, Infinity, 1e999): kept as a marker while
    parsing, so that the problem names where it sits."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> _Refused:
        refused = super().__new__(cls, "nan")
        refused.text = text
        return refused


def parse_report_json(text: str) -> Any:
    """``json.loads`` that refuses non-finite numbers (naming their path) and deep nesting."""
    refused: list[_Refused] = []

    def constant(name: str) -> float:
        refused.append(_Refused(name))
        return refused[-1]

    def finite_float(number: str) -> float:
        value = float(number)
        if math.isfinite(value):
            return value
        refused.append(_Refused(number[:40]))
        return refused[-1]

    try:
        document = json.loads(text, parse_constant=constant, parse_float=finite_float)
    except RecursionError:
        raise ReportProblem("$: nested too deeply to be a report") from None
    except json.JSONDecodeError as exc:
        raise ReportProblem(f"not JSON: {exc}") from None
    except ValueError:  # an integer longer than Python reads from text (sys.get_int_max_str_digits)
        limit = f"{sys.get_int_max_str_digits():,}"
        why = f"a number of more than {limit} digits is not a number a report can hold"
        raise ReportProblem(f"$: {why}") from None
    if refused:  # found by a walk, which only a refused document pays for
        path, value = next((p, v) for p, v in walk(document) if isinstance(v, _Refused))
        raise ReportProblem(f"{path}: {value.text} is not a number a report can hold")
    return document


# --- the declaration ------------------------------------------------------------------------------

TEXT = Text()
FLAG = Boolean()
COUNT = Integer(0)
PORT = Integer(0, 65535)
SECONDS = Number()
STATE = Choice(tuple(state.value for state in PortState), PortState)
PROTOCOL = Choice(tuple(proto.value for proto in Protocol), Protocol)
FINDING = Choice(tuple(kind.value for kind in FindingKind), FindingKind)
RUN_ID = Pattern(
    r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", "a run id (1-128 letters, digits, '.', '_', ':', '-')"
)


@functools.lru_cache(maxsize=256)
def _runs_problem(spec: str) -> str | None:
    """Why a host's port runs cannot be read, or None; a fleet's hosts share a few specs (every
    host of every one of 64 shard reports may say ``1-65535/tcp``), so each is read once."""
    try:
        runs_of_spec(spec)
    except ValueError as exc:
        return str(exc)
    return None


PORT_RUNS = Checked("port runs", _runs_problem)


def _date_problem(text: str) -> str | None:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return ""
    return None


DATE = Checked("a date like 2026-12-31", _date_problem)

TLS = Obj(model=TlsInfo, fields=(
    Field("version", TEXT, True, doc="the TLS version negotiated"),
    Field("cipher", TEXT, True),
    Field("subject", TEXT, True, doc="the leaf certificate's subject"),
    Field("issuer", TEXT, True),
    Field("not_after", TEXT, True, doc="the certificate's expiry, ISO 8601"),
    Field("days_left", Integer(-(10**6), 10**6), True),
    Field("verified", FLAG, True, doc="chain and name verified (only when asked for)"),
    Field("below_minimum", TEXT, nullable=True, doc="a version below `min_version` the server accepted"),
    Field("certificate_error", TEXT, nullable=True),
    Field("fingerprint_sha256", TEXT, nullable=True, since="#18", doc="of the leaf certificate"),
))  # fmt: skip
NAME_ANSWER = Obj(model=NameAnswer, fields=(
    Field("verified", FLAG, True),
    Field("name", TEXT, nullable=True, default=None),
    Field("error", TEXT, nullable=True),
))  # fmt: skip
PROBE = Obj(model=ServiceInfo, fields=(
    Field("service", TEXT, True, doc="what answered: ssh, https, redis..."),
    Field("evidence", TEXT, default="", doc="the bytes it was recognised by, neutralised"),
    Field("product", TEXT, nullable=True),
    Field("version", TEXT, nullable=True),
    Field("tls", TLS, nullable=True),
    Field("auth", TEXT, nullable=True, doc="`required` or `none` where the probe can tell"),
    Field("error", TEXT, nullable=True),
    Field("local_failure", FLAG, doc="the probe failed on this side (no answer to judge)"),
    Field("auth_note", TEXT, nullable=True),
    Field("names", ListOf(NAME_ANSWER), doc="per name asked for, where several names met on the port"),
))  # fmt: skip
ASKED = Row((
    Field("service", TEXT),
    Field("min_version", TEXT, nullable=True),
    Field("verify", FLAG),
    Field("expires_in_days", COUNT, nullable=True),
    Field("auth", TEXT, nullable=True),
    Field("name", TEXT, nullable=True),
))  # fmt: skip
"""A requirement a probe was run for (``report.model.Asked``)."""
RESULT = Obj(model=ProbeResult, fields=(
    Field("host", TEXT, True, doc="as written"),
    Field("address", TEXT, True, nullable=True, doc="null when the host did not resolve"),
    Field("proto", PROTOCOL, True),
    Field("port", PORT, True),
    Field("state", STATE, True),
    Field("reason", TEXT, True, doc="syn-ack, conn-refused, no-response..."),
    Field("service", TEXT, read=False, doc="the port table's name"),
    Field("latency_ms", SECONDS, nullable=True, doc="of the deciding attempt"),
    Field("attempts", COUNT),
    Field("probe", PROBE, nullable=True, read=False, doc="what a protocol probe found"),
    Field("asked", ListOf(ASKED), since="#19", read=False, doc="with `probe`: what it was run for"),
))  # fmt: skip
FOUND = Obj((
    Field("address", TEXT, True),
    Field("state", STATE, True),
    Field("reason", TEXT, True),
    Field("latency_ms", SECONDS, nullable=True),
    Field("port", PORT, doc="a range item's port (a single port's item names it in its target)"),
))  # fmt: skip
DECLARED_AT = Obj((
    Field("path", TEXT, True), Field("line", COUNT, True), Field("description", TEXT, True),
))  # fmt: skip
EXPECTATION = Obj((
    Field("host", TEXT, True),
    Field("target", TEXT, True, doc="`tcp/22`, or a range's label"),
    Field("expected", TEXT, True),
    Field("verdict", TEXT, True, doc="passed, failed, error or waived"),
    Field("nodeid", TEXT),
    Field("message", TEXT),
    Field("found", ListOf(FOUND), doc="what each address showed"),
    Field("services", ListOf(TEXT), doc="`ADDRESS DESCRIPTION` of what answered"),
    Field("line", COUNT, doc="the inventory line of the entry"),
    Field("waiver", Obj((Field("until", DATE, True), Field("reason", TEXT, True))), nullable=True),
    Field("silent", ListOf(TEXT), doc="addresses on which nothing answered"),
    Field("kind", FINDING, doc="what kind of finding a failure or error is (SARIF's rule)"),
    Field("vantage", TEXT, doc="the vantage of an entry under `from:`"),
    Field("declared_at", DECLARED_AT, doc="the Compose, Kubernetes or Terraform line that declares the port"),
))  # fmt: skip
"""One item's outcome in the plugin's report (``report.judged.ItemOutcome``)."""
SETTINGS = Obj((
    Field("timeout_s", Number(positive=True)),
    Field("retries", COUNT),
    Field("window", Integer(1)),
    Field("max_rate", Number(positive=True), nullable=True),
    Field("min_rate", Number(positive=True), nullable=True),
))  # fmt: skip
QUALITY = Obj(model=AddressQuality, fields=(
    Field("address", TEXT, True),
    Field("rate_pps", SECONDS, attribute="rate", doc="the highest TCP send rate reached"),
    Field("drops", COUNT), Field("retries", COUNT), Field("reexaminations", COUNT),
    Field("unresolved", COUNT), Field("slowdowns", COUNT), Field("limited", FLAG, read=False),
))  # fmt: skip
HOST = Obj(model=Resolution, fields=(
    Field("host", TEXT, True),
    Field("addresses", ListOf(TEXT), True),
    Field("error", TEXT, nullable=True, doc="why it did not resolve"),
))  # fmt: skip
SIGNATURE = Obj((Field("algorithm", TEXT, True), Field("value", TEXT, True)))
SUMMARY = Obj(tuple(Field(state, COUNT) for state in STATE.values))
_HEAD = (
    Field("tool", TEXT, doc="the writer and its version"),
    Field("command", ListOf(TEXT)),
    Field("started", TEXT, doc="ISO 8601, UTC"),
    Field("elapsed_s", SECONDS),
    Field("interrupted", FLAG, doc="the scan was cut short: the report is partial"),
    Field("settings", SETTINGS),
    Field("summary", SUMMARY, doc="ports by state, for people (not read back)"),
)
_TAIL = (
    Field("run_id", RUN_ID, since="#18", doc="the run the report belongs to"),
    Field("signature", SIGNATURE, since="#18", doc="HMAC-SHA256 with `PORTCHECK_REPORT_KEY`, the last key"),
)
REPORT = Obj((
    Field("version", Integer(REPORT_VERSION, REPORT_VERSION), True),
    *_HEAD,
    Field("hosts", ListOf(HOST)),
    Field("scan_quality", ListOf(QUALITY), doc="addresses that dropped probes, per address"),
    Field("expectations", ListOf(EXPECTATION), doc="the plugin's report: each item's outcome"),
    *_TAIL,
    Field("results", ListOf(RESULT), True, doc="every result, one per line"),
))  # fmt: skip
"""Version 1. (``summary``, counts by state, is written for people and not read back.)"""

EXCEPTION = Row((
    Field("port", PORT), Field("state", STATE), Field("reason", TEXT),
    Field("latency_ms", SECONDS, nullable=True), Field("attempts", COUNT),
))  # fmt: skip
"""A listed port of a shard report: one that does not have its address's usual state."""
REQUIREMENT = Row((
    Field("proto", PROTOCOL), Field("port", Integer(1, 65535)), Field("vantage", TEXT, nullable=True),
    Field("service", TEXT, nullable=True), Field("min_version", TEXT, nullable=True), Field("verify", FLAG),
    Field("expires_in_days", COUNT, nullable=True), Field("auth", TEXT, nullable=True),
))  # fmt: skip
"""A service requirement of the plan (``sharding.plan.Requirement``)."""
PLAN_ROW = Row(
    (
        Field("address", TEXT), Field("timeout_s", Number(positive=True)), Field("retries", COUNT),
        Field("ports", PORT_RUNS), Field("requirements", ListOf(REQUIREMENT)),
    ),
    optional=1,
)  # fmt: skip
"""One host of the inventory's plan; the runs are read here, so a bad one is the report's one error."""
ADDRESS = Row((
    Field("host", TEXT), Field("address", TEXT), Field("proto", PROTOCOL), Field("usual", STATE),
    Field("reason", TEXT), Field("count", COUNT, nullable=True), Field("exceptions", ListOf(EXCEPTION)),
))  # fmt: skip
"""One (host, address, protocol) of a shard: the state most of its ports share, and the others."""
SERVICE = Obj((
    Field("address", TEXT, True), Field("proto", PROTOCOL, True), Field("port", PORT, True),
    Field("probe", PROBE, True), Field("asked", ListOf(ASKED), since="#18"),
))  # fmt: skip
SHARD = Obj((
    Field("digest", TEXT, True, doc="of the plan: what the inventory asked"),
    Field("index", Integer(1), True), Field("count", Integer(1), True),
    Field("vantage", TEXT, nullable=True),
))  # fmt: skip
SHARD_REPORT = Obj((
    Field("version", Integer(SHARD_REPORT_VERSION, SHARD_REPORT_VERSION), True),
    *_HEAD,
    Field("shard", SHARD, True),
    Field("plan", ListOf(PLAN_ROW), True, doc="per inventory host: address, timing, port runs, requirements"),
    Field("hosts", ListOf(HOST), True),
    Field("addresses", ListOf(ADDRESS), True, doc="one row per (host, address, protocol)"),
    Field("services", ListOf(SERVICE), doc="what the probes found, and what they were run for"),
    *_TAIL,
))  # fmt: skip
"""Version 2, the shard report: a share of the inventory's plan, ports folded by their usual state."""

# --- checking -------------------------------------------------------------------------------------

_RESULT_KEYS = frozenset(
    {"host", "address", "proto", "port", "state", "reason", "service", "latency_ms", "attempts"}
)
"""The keys of a result as portcheck writes one without a probe (the fast path below)."""
assert RESULT.keys() >= _RESULT_KEYS
_STATES = frozenset(STATE.values)
_PROTOCOLS = frozenset(PROTOCOL.values)


def _plain_result(result: Any) -> bool:
    """The common case, checked in one pass (65,535 results take ~0.05 s instead of ~0.2 s): a result
    as portcheck writes it, without a probe, that ``RESULT`` accepts (tests check the two agree).
    Anything else goes through the declaration, which names the problem."""
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


def _version(document: Any) -> int:
    if type(document) is not dict:
        raise ReportProblem(f"$: expected a JSON object, not {shown(document)}")
    version = document.get("version")
    if type(version) is not int or version not in (REPORT_VERSION, SHARD_REPORT_VERSION):
        given = json.dumps(version)[:20] if "version" in document else "missing"
        raise ReportProblem(
            f"$.version: unsupported report version {given} "
            f"(this reads {REPORT_VERSION} and {SHARD_REPORT_VERSION})"
        )
    return version


def validate_report(document: Any) -> None:
    """Raise ReportProblem unless ``document`` is a version 1 report."""
    if _version(document) == SHARD_REPORT_VERSION:
        raise ReportProblem(
            "$.version: a shard report (version 2) of 'portcheck scan --inventory': judge it with "
            "pytest --portcheck INVENTORY --portcheck-results REPORTS"
        )
    results = document.get("results")
    if isinstance(results, list) and all(_plain_result(result) for result in results):
        REPORT.check({**document, "results": []}, "$")  # every result already passed the fast check
    else:
        REPORT.check(document, "$")


def validate_shard_report(document: Any) -> None:
    """Raise ReportProblem unless ``document`` is a version 2 (shard) report."""
    if _version(document) != SHARD_REPORT_VERSION:
        raise ReportProblem(f"$.version: expected {SHARD_REPORT_VERSION} (a shard report), not 1")
    SHARD_REPORT.check(document, "$")
    shard = document["shard"]
    if shard["index"] > shard["count"]:
        count, index = shard["count"], shard["index"]
        raise ReportProblem(f"$.shard.index: expected at most shard.count ({count}), not {index}")


def field_table(declaration: Obj) -> str:
    """The declaration as a Markdown table (docs/reports.md holds the generated one)."""
    lines = ["| key | value | presence | meaning |", "|---|---|---|---|"]
    for row in field_rows(declaration):
        path, kind, presence, meaning = (cell.replace("|", "\\|") for cell in row)
        lines.append(f"| `{path}` | {kind} | {presence} | {meaning} |")
    return "\n".join(lines) + "\n"
