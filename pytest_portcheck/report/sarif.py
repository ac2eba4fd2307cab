"""The SARIF 2.1.0 log: each failing or erroring item as a code scanning result on the line that
declares the port.

``write_sarif`` walks ``findings.Outcome`` records once and writes one run (a whole fleet judged
from shard reports is one analysis: GitHub accepts at most 20 runs a file) with:

- every rule, always, in ``FindingKind`` order, so a rule's ``ruleIndex`` never changes;
- one result per finding (passes and waived failures are not findings), located at the port's
  declaring line — a Compose/Kubernetes/Terraform line when the outcome has one (the inventory line
  is then a related location), else the inventory line. GitHub rejects a file whose results have no
  physical location, so every result has one, relative to ``%SRCROOT%`` when the file is inside the
  source root and an absolute ``file:`` URI otherwise;
- ``partialFingerprints`` from what identifies the finding and nothing that varies between runs
  of an unchanged fleet (see ``fingerprint``);
- at most ``MAX_RESULTS`` results (GitHub's limit a run): the most severe are kept, chosen in one
  pass with a bounded heap, and the run says how many of each rule were left out (a tool execution
  notification and the run's properties).

Message text comes from the judge and holds peer text (banners, certificate subjects): it is
written as JSON data, ASCII-only (bidi and control characters as ``\\u`` escapes), with SARIF's own
syntax neutralised: braces doubled (placeholders, SARIF §3.11.5) and ``](`` broken so that no
embedded link (§3.11.6) can be made of it.
Must not import pytest, yaml, the engine's scanner, the judge, the probes, the plugin or the CLI.
"""

from __future__ import annotations

import datetime
import hashlib
import heapq
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pytest_portcheck import __version__
from pytest_portcheck.atomicfile import write_atomically
from pytest_portcheck.judge.findings import FindingKind, Outcome, classify, failing_ports

if TYPE_CHECKING:
    from pathlib import Path
    from typing import TextIO

__all__ = ["MAX_RESULTS", "SARIF_SCHEMA", "fingerprint", "rule_id", "write_sarif"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
MAX_RESULTS = 25_000
"""GitHub code scanning rejects a run with more results than this."""
MAX_MESSAGE = 2_000
"""Characters of a result's message kept: an ``only_open`` failure can list thousands of ports, and
GitHub refuses a SARIF file over 10 MB gzipped. The full message stays in the pytest output and the
JSON report."""
INFORMATION_URI = "https://pypi.org/project/pytest-portcheck/"
SOURCE_ROOT = "%SRCROOT%"
FINGERPRINT_KEY = "portcheckFinding/v1"


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    short: str
    full: str
    help: str
    level: str
    tags: tuple[str, ...]
    precision: str
    security_severity: str | None
    """GitHub's score, 0.1-10, for security rules only (None: a problem severity instead)."""


_FIX = "Either the inventory is out of date (change the declaration) or the host drifted (fix the host)."
RULES: Mapping[FindingKind, _Rule] = {
    FindingKind.UNEXPECTED_OPEN: _Rule(
        "UnexpectedOpenPort",
        "A port declared closed answers",
        "A port that the inventory declares closed or filtered, or that lies outside an only_open "
        "list, accepted a connection (or, for UDP, gave no reply and no ICMP error: it may be open).",
        "Something is reachable that should not be: a service bound to a public address, a firewall "
        "rule removed, a new container port published. Close it or firewall it; if it is meant to be "
        "reachable, declare it open in the inventory. " + _FIX,
        "error",
        ("security", "network", "exposure"),
        "very-high",
        "8.0",
    ),
    FindingKind.NO_AUTHENTICATION: _Rule(
        "ServiceAuthentication",
        "A service answers without the declared authentication",
        "A service declared with auth: required answered without any authentication (or one declared "
        "auth: none demanded a login).",
        "Anyone who reaches the port can use the service. Turn authentication on (a password, "
        "requirepass for Redis), or correct the declaration. " + _FIX,
        "error",
        ("security", "network", "authentication"),
        "very-high",
        "9.0",
    ),
    FindingKind.WRONG_SERVICE: _Rule(
        "WrongService",
        "Another service answers on a declared port",
        "The port is open, but what answers is not the service the inventory declares there.",
        "A different program holds the port: a misconfigured deployment, a port clash, or something "
        "that should not be exposed. Check what listens there. " + _FIX,
        "error",
        ("security", "network", "service"),
        "very-high",
        "6.5",
    ),
    FindingKind.TLS: _Rule(
        "TlsRequirement",
        "TLS does not meet the declared requirement",
        "The service's TLS is below the declared minimum version, its certificate does not verify, or "
        "the certificate expires sooner than declared.",
        "Renew the certificate, or configure the server to refuse old protocol versions; if the "
        "requirement is wrong, change it in the inventory.",
        "error",
        ("security", "network", "tls"),
        "very-high",
        "5.5",
    ),
    FindingKind.PORT_NOT_FILTERED: _Rule(
        "PortNotFiltered",
        "A port declared filtered is reachable through the firewall",
        "A port that the inventory declares filtered was refused rather than dropped: nothing listens "
        "there, but the firewall lets connections through.",
        "Packets reach the host on a port that should be dropped: a firewall rule is missing or was "
        "removed. Restore it, or declare the port closed. " + _FIX,
        "warning",
        ("security", "network", "firewall"),
        "very-high",
        "4.0",
    ),
    FindingKind.DECLARED_UNREACHABLE: _Rule(
        "DeclaredPortUnreachable",
        "A port declared open does not answer",
        "A port that the inventory declares open was refused or gave no answer.",
        "The service is down, moved, or a firewall now blocks it. Start it or open the path; if it was "
        "retired, remove it from the inventory. " + _FIX,
        "error",
        ("network", "availability"),
        "very-high",
        None,
    ),
    FindingKind.DRIFT: _Rule(
        "PortDrift",
        "A port does not match its declaration",
        "The port fails its declaration in a way this record does not classify further: a service "
        "requirement judged in a report written before finding kinds existed.",
        "Read the message for what was found. " + _FIX,
        "error",
        ("network",),
        "high",
        None,
    ),
    FindingKind.CANNOT_CHECK: _Rule(
        "CannotCheck",
        "A declaration could not be checked",
        "The evidence could not prove the declaration either way: the host did not resolve, the port "
        "was not scanned, a probe failed locally, or (with --portcheck-strict) the pass would rest on "
        "silence that could not be explained.",
        "Nothing was proven, so nothing passes. Fix what the message names (a name that does not "
        "resolve, a vantage without a report, a probe error), then run again.",
        "warning",
        ("network", "coverage"),
        "high",
        None,
    ),
}
_KINDS = tuple(RULES)
_RULE_INDEX = {kind: index for index, kind in enumerate(_KINDS)}
_RULE_IDS = {kind: f"portcheck/{kind.value}" for kind in FindingKind}


def rule_id(kind: FindingKind) -> str:
    return _RULE_IDS[kind]


def _rule_descriptor(kind: FindingKind) -> dict[str, Any]:
    rule = RULES[kind]
    properties: dict[str, Any] = {"tags": list(rule.tags), "precision": rule.precision}
    if rule.security_severity is not None:
        properties["security-severity"] = rule.security_severity
    else:
        properties["problem.severity"] = "error" if rule.level == "error" else "warning"
    return {
        "id": rule_id(kind),
        "name": rule.name,
        "shortDescription": {"text": rule.short},
        "fullDescription": {"text": rule.full},
        "help": {"text": rule.help, "markdown": f"**{rule.short}.** {rule.help}"},
        "defaultConfiguration": {"level": rule.level},
        "properties": properties,
    }


def fingerprint(outcome: Outcome, kind: FindingKind) -> str:
    """What identifies a finding across runs: the rule, the item (inventory path as in its node id —
    never an absolute path, which differs between checkouts —, host, target, expectation, vantage)
    and, for exposure and reachability, which address and port break the declaration. Not the
    message (it holds latencies and peer text), the found state (an unanswered port flips between
    refused and silent), timestamps, the inventory line (an edit above it would re-open the alert:
    the location tracks the line) nor the order of anything."""
    subject: list[str] = []
    if kind in (FindingKind.UNEXPECTED_OPEN, FindingKind.PORT_NOT_FILTERED, FindingKind.DECLARED_UNREACHABLE):
        subject = sorted({f"{found.address} {found.port}" for found in failing_ports(outcome)})
    identity = [
        1,
        rule_id(kind),
        outcome.inventory,
        outcome.host,
        outcome.target,
        outcome.expected,
        outcome.vantage or "",
        subject,
    ]
    encoded = json.dumps(identity, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return hashlib.sha256(encoded).hexdigest()[:32]


_SURROGATE = re.compile("[\ud800-\udfff]")


def _message_text(text: str) -> str:
    """SARIF plain text that shows ``text``: cut to MAX_MESSAGE, lone surrogates (undecodable file
    names) replaced, braces doubled, and no ``[...](...)`` left to read as an embedded link."""
    if len(text) > MAX_MESSAGE:
        left = len(text) - MAX_MESSAGE
        text = f"{text[:MAX_MESSAGE]}… ({left:,} more characters: see the test output or the JSON report)"
    text = _SURROGATE.sub("\ufffd", text)
    return text.replace("{", "{{").replace("}", "}}").replace("](", "] (")


class _Locator:
    """Artifact locations relative to the source root, each path resolved once (symlinks too: GitHub
    cannot show a result in a file it knows only by a link)."""

    def __init__(self, source_root: str, base: str) -> None:
        self.root = os.path.realpath(source_root)
        self.base = base
        self.known: dict[str, dict[str, str]] = {}

    def root_uri(self) -> str:
        return _file_uri(self.root.rstrip("/") + "/")

    def artifact(self, path: str) -> dict[str, str]:
        location = self.known.get(path)
        if location is None:
            resolved = os.path.realpath(os.path.join(self.base, path))
            relative = os.path.relpath(resolved, self.root)
            if relative == ".." or relative.startswith("../"):
                location = {"uri": _file_uri(resolved)}
            else:
                location = {"uri": quote(os.fsencode(relative), safe="/"), "uriBaseId": SOURCE_ROOT}
            self.known[path] = location
        return location

    def location(self, path: str, line: int, text: str) -> dict[str, Any]:
        start = max(line, 1)  # 0: the line is unknown; SARIF lines start at 1
        return {
            "physicalLocation": {
                "artifactLocation": self.artifact(path),
                "region": {"startLine": start, "endLine": start},
            },
            "message": {"text": _message_text(text)},
        }


def _file_uri(path: str) -> str:
    return "file://" + quote(os.fsencode(path), safe="/")


def _result(outcome: Outcome, kind: FindingKind, locator: _Locator) -> dict[str, Any]:
    where = f"{outcome.host} {outcome.target} {outcome.expected}"
    inventory = locator.location(outcome.inventory, outcome.line, f"declared in the inventory: {where}")
    declared = outcome.declared_at
    key = fingerprint(outcome, kind)
    result: dict[str, Any] = {
        "ruleId": rule_id(kind),
        "ruleIndex": _RULE_INDEX[kind],
        "level": RULES[kind].level,
        "message": {"text": _message_text(outcome.message or f"{where}: {RULES[kind].short}")},
        "locations": [inventory],
        "partialFingerprints": {"primaryLocationLineHash": key, FINGERPRINT_KEY: key},
        "properties": {
            "host": outcome.host,
            "target": outcome.target,
            "expected": outcome.expected,
            "verdict": outcome.verdict,
            "nodeid": outcome.nodeid,
        },
    }
    if outcome.vantage is not None:
        result["properties"]["vantage"] = outcome.vantage
    if declared is not None:
        result["locations"] = [locator.location(declared.path, declared.line, declared.description)]
        result["relatedLocations"] = [{"id": 1, **inventory}]
    return result


@dataclass(frozen=True, slots=True)
class _Selection:
    chosen: list[tuple[Outcome, FindingKind]]
    """The findings written, most severe first."""
    total: dict[FindingKind, int]
    waived: int


def _select(outcomes: Iterable[Outcome], limit: int) -> _Selection:
    """One pass: each outcome classified once, at most ``limit`` findings kept (a heap of that size:
    linear in the number of outcomes), the same ones whatever order the outcomes come in."""
    total = dict.fromkeys(_KINDS, 0)
    waived = 0

    def findings() -> Iterator[tuple[int, str, str, int, str, str, str, str, Outcome, FindingKind]]:
        nonlocal waived
        for outcome in outcomes:
            kind = classify(outcome)
            if kind is None:
                waived += outcome.verdict == "waived"
                continue
            total[kind] += 1
            # The node id makes the order total: the chosen set never depends on the input order.
            yield (kind.rank, outcome.inventory, outcome.nodeid, outcome.line, outcome.host,
                   outcome.target, outcome.expected, outcome.vantage or "", outcome, kind)  # fmt: skip

    chosen = heapq.nsmallest(limit, findings(), key=lambda entry: entry[:8])
    return _Selection([(entry[8], entry[9]) for entry in chosen], total, waived)


def _left_out_note(found: int, written: int, left_out: Mapping[FindingKind, int]) -> dict[str, Any]:
    counts = ", ".join(f"{count:,} {rule_id(kind)}" for kind, count in left_out.items() if count)
    return {
        "level": "warning",
        "message": {
            "text": f"{found - written:,} of {found:,} findings left out ({counts}): a run holds "
            f"at most {written:,} results; the most severe were kept. The JSON report and the "
            "test output hold them all."
        },
        "descriptor": {"id": "portcheck/results-left-out"},
    }


def _run_head(
    selection: _Selection,
    locator: _Locator,
    *,
    interrupted: bool,
    started: str | None,
    command: Sequence[str],
    category: str | None,
) -> dict[str, Any]:
    written = len(selection.chosen)
    found = sum(selection.total.values())
    left_out = dict(selection.total)
    for _outcome, kind in selection.chosen:
        left_out[kind] -= 1
    invocation: dict[str, Any] = {
        "executionSuccessful": not interrupted,
        "workingDirectory": {"uri": locator.root_uri()},
    }
    if command:
        invocation["arguments"] = list(command)
    when = _utc(started)
    if when is not None:
        invocation["startTimeUtc"] = when
    if written < found:
        invocation["toolExecutionNotifications"] = [_left_out_note(found, written, left_out)]
    head: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "pytest-portcheck",
                "version": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [_rule_descriptor(kind) for kind in _KINDS],
            }
        },
        "invocations": [invocation],
        "originalUriBaseIds": {
            SOURCE_ROOT: {"uri": locator.root_uri(), "description": {"text": "The source root."}}
        },
        "properties": {
            "findings": found,
            "resultsWritten": written,
            "resultsLeftOut": found - written,
            "leftOutByRule": {rule_id(kind): count for kind, count in left_out.items() if count},
            "waived": selection.waived,
        },
    }
    if _SEMVER.fullmatch(__version__):
        head["tool"]["driver"]["semanticVersion"] = __version__
    if category:
        head["automationDetails"] = {"id": f"{category.rstrip('/')}/"}
    return head


_SEMVER = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")


def _utc(started: str | None) -> str | None:
    """An ISO 8601 time as SARIF writes it (UTC, ``Z``); None for none or one that does not parse."""
    try:
        when = datetime.datetime.fromisoformat(started or "")
    except ValueError:
        return None
    if when.tzinfo is None:
        return None  # a local time of unknown zone: better none than a wrong one
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dump_sarif(
    outcomes: Iterable[Outcome],
    stream: TextIO,
    *,
    source_root: str | Path,
    base: str | Path | None = None,
    interrupted: bool = False,
    started: str | None = None,
    command: Sequence[str] = (),
    category: str | None = None,
    limit: int = MAX_RESULTS,
) -> None:
    """Write the SARIF log of ``outcomes`` to ``stream``: indented, one result per line.

    ``source_root`` is the root artifact locations are relative to (the repository's checkout);
    ``base`` the directory relative paths in the outcomes start from (the run's root directory;
    default: ``source_root``). ``started`` is an ISO 8601 UTC time (``...Z``); ``category`` becomes
    ``automationDetails.id`` (tell two analyses of one commit apart, e.g. one per vantage).
    """
    locator = _Locator(os.fspath(source_root), os.fspath(base if base is not None else source_root))
    selection = _select(outcomes, limit)
    head = _run_head(
        selection, locator, interrupted=interrupted, started=started, command=command, category=category
    )
    stream.write(f'{{\n "$schema": {json.dumps(SARIF_SCHEMA)},\n "version": "2.1.0",\n "runs": [\n')
    run = json.dumps(head, indent=1)
    stream.write(run[:-2] + ',\n "results": [')
    separator = "\n  "
    for outcome, kind in selection.chosen:
        stream.write(separator + json.dumps(_result(outcome, kind, locator)))
        separator = ",\n  "
    stream.write("\n ]\n}\n ]\n}\n" if selection.chosen else "]\n}\n ]\n}\n")


def write_sarif(
    destination: str | Path,
    outcomes: Iterable[Outcome],
    *,
    source_root: str | Path,
    base: str | Path | None = None,
    interrupted: bool = False,
    started: str | None = None,
    command: Sequence[str] = (),
    category: str | None = None,
    limit: int = MAX_RESULTS,
) -> None:
    """``dump_sarif`` into a file, atomically (see ``atomicfile``; WriteError naming the file)."""

    def write(stream: TextIO) -> None:
        dump_sarif(
            outcomes,
            stream,
            source_root=source_root,
            base=base,
            interrupted=interrupted,
            started=started,
            command=command,
            category=category,
            limit=limit,
        )

    write_atomically(destination, write)
