"""The Prometheus text format for node_exporter's textfile collector: whether each expectation is met,
counts per host, the scan's quality per address and the run's time.

``write_metrics`` walks the ``findings.Outcome`` records and the ``ScanReport`` once each and writes
(every metric a gauge: each run replaces the file, so nothing here is a counter across scrapes):

- ``portcheck_expectation_met``: 1 for a passed item, 0 for a failed, erroring or waived one, labelled
  with the item (``inventory``, ``host``, ``target``, ``expected``, ``vantage`` when set) and its
  ``verdict``, so an alert can tell drift from "cannot check" from an accepted (waived) failure;
- ``portcheck_host_expectations``: items per inventory, host and verdict (every verdict, zeros too);
- ``portcheck_host_ports``: the scan's results per host and port state (every state, zeros too),
  and ``portcheck_host_addresses`` (0 for a host that did not resolve);
- per address that dropped probes or needed more than one clean answer a port (docs/scanning.md, "Real
  networks"): drops, retries, paced re-examinations, ports left unresolved, rate cuts and the highest
  send rate;
- the run's start (``portcheck_run_start_timestamp_seconds``, a value, never a sample timestamp:
  the textfile collector refuses those), duration, interruption and probes sent.

Label values are host names, addresses and paths from inventories and reports — hostile input: each
is escaped as the exposition format requires (backslash, double quote and line feed), and a lone
surrogate (an undecodable file name) becomes U+FFFD so the file stays valid UTF-8. Two items that
would make the same series are refused (MetricsError): the collector would reject the whole file.
The file is written through ``atomicfile``: the collector never reads half a file, and the temporary
name (``.NAME.*.tmp``) does not end in ``.prom``, so it is never read at all.
Must not import pytest, yaml, the engine's scanner, the judge, the probes, the plugin or the CLI.
"""

from __future__ import annotations

import datetime
import re
import time
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from pytest_portcheck.atomicfile import write_atomically
from pytest_portcheck.report.model import STATE_ORDER

if TYPE_CHECKING:
    from pathlib import Path
    from typing import TextIO

    from pytest_portcheck.engine import AddressQuality
    from pytest_portcheck.judge.findings import Outcome
    from pytest_portcheck.report.model import ScanReport

__all__ = ["MetricsError", "dump_metrics", "escape_label", "write_metrics"]

VERDICTS = ("passed", "failed", "error", "waived")


class MetricsError(Exception):
    """Outcomes that cannot be written as metrics (two items that would be one series)."""


_SURROGATE = re.compile("[\ud800-\udfff]")


@lru_cache(maxsize=65536)
def escape_label(value: str) -> str:
    """A label value as the text format writes it between double quotes (host names repeat: cached)."""
    value = _SURROGATE.sub("\ufffd", value)
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _pairs(**labels: str | None) -> str:
    """``name="value",...`` for the labels given (None: left out), escaped."""
    return ",".join(f'{name}="{escape_label(value)}"' for name, value in labels.items() if value is not None)


def _labels(**labels: str | None) -> str:
    return "{" + _pairs(**labels) + "}"


def _family(stream: TextIO, name: str, help_text: str) -> None:
    stream.write(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def _expectations(stream: TextIO, outcomes: Iterable[Outcome]) -> None:
    """The per-item family, then the items per inventory, host and verdict."""
    _family(
        stream,
        "portcheck_expectation_met",
        "1 when the inventory entry's declaration holds (verdict passed), 0 when it failed, could not be "
        "checked (error) or failed under a waiver (waived).",
    )
    # Keyed by label text, not tuples: strings are not tracked by the garbage collector, and a million
    # long-lived tuples made its full collections cost as much as the writing (2.5x per outcome at 1M).
    seen: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        host = _pairs(inventory=outcome.inventory, host=outcome.host)
        item = f"{host},{_pairs(target=outcome.target, expected=outcome.expected, vantage=outcome.vantage)}"
        if item in seen:
            raise MetricsError(
                f"{outcome.nodeid} and {seen[item]} would be one series: the same inventory, host, "
                "target, expectation and vantage"
            )
        seen[item] = outcome.nodeid
        verdict = str.__str__(outcome.verdict)  # a Verdict member (a str enum) as its plain value
        met = 1 if verdict == "passed" else 0
        stream.write(f'portcheck_expectation_met{{{item},verdict="{escape_label(verdict)}"}} {met}\n')
        by_verdict = counts.get(host)
        if by_verdict is None:
            by_verdict = counts[host] = dict.fromkeys(VERDICTS, 0)
        by_verdict[verdict] = by_verdict.get(verdict, 0) + 1
    _family(stream, "portcheck_host_expectations", "Inventory entries of the host with this verdict.")
    for host, by_verdict in counts.items():
        for verdict, count in by_verdict.items():
            stream.write(f'portcheck_host_expectations{{{host},verdict="{escape_label(verdict)}"}} {count}\n')


def _scan(stream: TextIO, scan: ScanReport) -> None:
    _family(
        stream,
        "portcheck_host_addresses",
        "Addresses the host (as scanned: the inventory's address, or its name) resolved to; "
        "0: it did not resolve.",
    )
    addresses: dict[str, set[str]] = {}
    for resolution in scan.resolutions:  # a merged report may resolve a host more than once
        known = addresses.setdefault(resolution.host, set())
        if resolution.error is None:
            known.update(resolution.addresses)
    for host, resolved in addresses.items():
        stream.write(f"portcheck_host_addresses{_labels(host=host)} {len(resolved)}\n")
    _family(stream, "portcheck_host_ports", "Ports of the host (as scanned) the scan found in this state.")
    by_host: dict[str, Counter[str]] = {}
    for result in scan.results:
        by_host.setdefault(result.host, Counter())[result.state.value] += 1
    for host, counted in by_host.items():
        for state in STATE_ORDER:
            labels = _labels(host=host, state=state.value)
            stream.write(f"portcheck_host_ports{labels} {counted[state.value]}\n")
    _quality(stream, list(scan.stats.addresses.values()))


_QUALITY = (
    ("portcheck_address_drops", "drops",
     "Probes that met silence but whose retry was answered (loss or rate limiting)."),
    ("portcheck_address_retries", "retries",
     "Attempts after the first, for ports that did not answer at once."),
    ("portcheck_address_reexaminations", "reexaminations",
     "Paced extra probes of ports still silent after their retries."),
    ("portcheck_address_unresolved_ports", "unresolved",
     "Ports left silent on an address seen dropping, without a paced sample showing the silence is real."),
    ("portcheck_address_slowdowns", "slowdowns", "Times the send rate was cut for drops."),
    ("portcheck_address_rate_probes_per_second", "rate", "Highest TCP send rate reached, probes per second."),
)  # fmt: skip
"""(metric, ``AddressQuality`` field, help) for the per-address scan quality."""


def _quality(stream: TextIO, qualities: list[AddressQuality]) -> None:
    for name, field, help_text in _QUALITY:
        _family(stream, name, help_text)
        for quality in qualities:
            stream.write(f"{name}{_labels(address=quality.address)} {_number(getattr(quality, field))}\n")


def _run(stream: TextIO, scan: ScanReport | None, timestamp: float) -> None:
    _family(stream, "portcheck_run_start_timestamp_seconds", "When the run started, seconds since the epoch.")
    stream.write(f"portcheck_run_start_timestamp_seconds {_number(float(timestamp))}\n")
    if scan is None:
        return
    for name, help_text, value in (
        ("portcheck_run_duration_seconds", "How long the scan took.", round(scan.elapsed_s, 3)),
        ("portcheck_run_interrupted", "1 when the scan was interrupted (its results are partial).",
         int(scan.interrupted)),
        ("portcheck_run_probes_sent", "Probes the scan sent.", scan.stats.probes_sent),
        ("portcheck_run_results", "Port results the scan holds.", len(scan.results)),
    ):  # fmt: skip
        _family(stream, name, help_text)
        stream.write(f"{name} {_number(value)}\n")


def run_timestamp(scan: ScanReport | None) -> float | None:
    """The scan's start (its ISO 8601 ``started``) in seconds since the epoch; None when unknown."""
    if scan is None:
        return None
    try:
        started = datetime.datetime.fromisoformat(scan.started)
    except ValueError:
        return None
    return None if started.tzinfo is None else started.timestamp()


def dump_metrics(
    outcomes: Iterable[Outcome],
    stream: TextIO,
    scan: ScanReport | None = None,
    *,
    timestamp: float | None = None,
) -> None:
    """Write the metrics of ``outcomes`` and ``scan`` (None in judge mode without a merged report).

    ``timestamp``: the run's start, seconds since the epoch; by default the scan's ``started``, or
    the time of writing when that is unknown."""
    if timestamp is None:
        timestamp = run_timestamp(scan)
    _expectations(stream, outcomes)
    if scan is not None:
        _scan(stream, scan)
    _run(stream, scan, time.time() if timestamp is None else timestamp)


def write_metrics(
    destination: str | Path,
    outcomes: Iterable[Outcome],
    scan: ScanReport | None = None,
    *,
    timestamp: float | None = None,
) -> None:
    """``dump_metrics`` into a file, atomically (WriteError naming the file); name it ``*.prom`` in
    the collector's directory (``--collector.textfile.directory``)."""

    def write(stream: TextIO) -> None:
        dump_metrics(outcomes, stream, scan, timestamp=timestamp)

    write_atomically(destination, write)
