"""The HTML report: one self-contained page (no external assets) from a typed judged report.

A hosts x ports matrix coloured by verdict (or by state for a plain scan), filters by host and state,
drift listed first, and each cell's details on click. The page is drawn from a ``JudgedReport`` (the
scan's ``ScanReport`` and, for a plugin run, each item's ``ItemOutcome``), never from a JSON round trip.
The data travels as JSON inside the page with ``<``, ``>`` and ``&`` escaped, and the script builds
the page with ``textContent`` only, so nothing a scanned peer sent (banners) can become markup or
script. A Content-Security-Policy forbids any load.
Must not import pytest, the engine's scanner or the probes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_portcheck.atomicfile import write_text_atomically
from pytest_portcheck.engine.model import result_key
from pytest_portcheck.report.encode import service_to_dict
from pytest_portcheck.report.model import count_states, quality_notes

if TYPE_CHECKING:
    from pytest_portcheck.engine import ProbeResult
    from pytest_portcheck.probes.model import ServiceInfo
    from pytest_portcheck.report.judged import ItemOutcome, JudgedReport

__all__ = ["page_data", "render_html", "write_html"]

MAX_COLUMNS = 400
MAX_ROWS = 5000
SUMMARY_THRESHOLD = 25
"""A row's most common silent state is summarised (nmap's "Not shown") when it holds more ports than this."""
_ALWAYS_SUMMARISED = "closed"
_SUMMARISABLE = frozenset({"closed", "filtered", "open|filtered"})

Row = tuple[str, str]
"""(host, address) as the page names a row."""


@dataclass(frozen=True, slots=True)
class _Cell:
    """What one cell shows: the port's result (None where an expectation has no result on the row's
    address), what answered there, and the expectation judged on it (plugin reports)."""

    result: ProbeResult | None
    service: ServiceInfo | None = None
    expectation: ItemOutcome | None = None
    state: str = "unknown"
    """The result's state as the page names it (read once: an enum's value is a slow lookup)."""

    @classmethod
    def of(
        cls,
        result: ProbeResult | None,
        service: ServiceInfo | None,
        expectation: ItemOutcome | None = None,
    ) -> _Cell:
        return cls(result, service, expectation, "unknown" if result is None else result.state.value)


def page_data(judged: JudgedReport) -> dict[str, Any]:
    """What the page shows, computed here so that the script only draws.

    One pass over the results (linear: a 65,535-result report is a dictionary walk, not a matrix
    search). Plugin reports show every expectation; plain scans show per row the ports that are not
    in a summarised state, and summarise the rest like nmap's "Not shown: 65,532 filtered ports".
    """
    report, expectations = judged.scan, list(judged.expectations)
    by_row: dict[Row, dict[str, _Cell]] = {}
    for result in report.results:
        key = result_key(result)
        cell = _Cell.of(result, report.services.get(key) if key is not None and report.services else None)
        by_row.setdefault((result.host, result.address or ""), {})[f"{result.proto.value}/{result.port}"] = (
            cell
        )
    if expectations:
        shown, summaries = _expectation_cells(expectations, by_row)
    else:
        shown, summaries = _scan_cells(by_row)
    rows = list(shown)[:MAX_ROWS]
    columns = sorted({target for row in rows for target in shown[row]}, key=_target_order)
    kept = columns[:MAX_COLUMNS]
    grid = [[_cell(shown[row][t]) if t in shown[row] else None for t in kept] for row in rows]
    drift = [
        {"nodeid": e.nodeid, "verdict": e.verdict, "message": e.message}
        for e in expectations
        if e.verdict in ("failed", "error")
    ]
    return {
        "title": "portcheck report",
        "started": report.started,
        "summary": {state.value: count for state, count in count_states(report.results).items()},
        "rows": [{"host": host, "address": address, "not_shown": summaries.get((host, address), "")}
                 for host, address in rows],
        "columns": kept,
        "grid": grid,
        "drift": drift,
        "quality": quality_notes(report.stats),
        "truncated": len(columns) > MAX_COLUMNS,
        "rows_truncated": max(0, len(shown) - MAX_ROWS),
        "summarised": any(summaries.values()),
    }  # fmt: skip


def _expectation_cells(
    expectations: Sequence[ItemOutcome], by_row: Mapping[Row, Mapping[str, _Cell]]
) -> tuple[dict[Row, dict[str, _Cell]], dict[Row, str]]:
    """Plugin reports: one cell per expectation and address, in inventory order."""
    # Results name the address they resolved; an inventory names hosts itself.
    by_address: dict[str, Mapping[str, _Cell]] = {}
    for (_, address), targets in by_row.items():
        by_address.setdefault(address, targets)
    shown: dict[Row, dict[str, _Cell]] = {}
    row_names = _row_names(expectations)
    for expectation in expectations:
        host = row_names[(expectation.inventory, expectation.host)]
        target = expectation.target
        for address in [found.address for found in expectation.found] or [""]:
            scanned = by_address.get(address, {}).get(target)
            if scanned is None:  # no result on this address: the expectation still gets its cell
                cell = _Cell.of(None, None, expectation)
            else:
                cell = _Cell.of(scanned.result, scanned.service, expectation)
            shown.setdefault((host, address), {})[target] = cell
    return shown, {}


def _scan_cells(
    by_row: Mapping[Row, Mapping[str, _Cell]],
) -> tuple[dict[Row, dict[str, _Cell]], dict[Row, str]]:
    """Plain scans: per row, the ports worth a cell, and a line for the states summarised."""
    shown: dict[Row, dict[str, _Cell]] = {}
    summaries: dict[Row, str] = {}
    for row, targets in by_row.items():
        counts = Counter(cell.state for cell in targets.values())
        quiet = {_ALWAYS_SUMMARISED}
        silent = [(n, state) for state, n in counts.items() if state in _SUMMARISABLE]
        if silent:
            most, state = max(silent)
            if most > SUMMARY_THRESHOLD:
                quiet.add(state)
        shown[row] = {t: cell for t, cell in targets.items() if cell.state not in quiet}
        summaries[row] = _not_shown(targets.values(), quiet)
    return shown, summaries


def _not_shown(cells: Iterable[_Cell], quiet: set[str]) -> str:
    """``Not shown: 65,532 filtered ports (no-response), 1 closed port (conn-refused)``."""
    by_state: dict[str, Counter[str]] = {}
    for cell in cells:
        if cell.state in quiet and cell.result is not None:
            by_state.setdefault(cell.state, Counter())[cell.result.reason] += 1
    parts = []
    for state, reasons in sorted(by_state.items(), key=lambda item: -item[1].total()):
        count = reasons.total()
        ranked = reasons.most_common()
        why = ", ".join(f"{n:,} {reason}" if len(ranked) > 1 else reason for reason, n in ranked)
        parts.append(f"{count:,} {state} port{'s' if count != 1 else ''} ({why})")
    return "Not shown: " + ", ".join(parts) if parts else ""


def _row_names(expectations: Sequence[ItemOutcome]) -> dict[tuple[str, str], str]:
    """Row names per (inventory, host): a host name two inventories use gets its file, so that
    their verdicts stay two rows instead of one overwriting the other."""
    sources: dict[str, set[str]] = {}
    for expectation in expectations:
        sources.setdefault(expectation.host, set()).add(expectation.inventory)
    return {
        (source, host): host if len(files) == 1 else f"{host} [{source}]"
        for host, files in sources.items()
        for source in files
    }


def _target_order(target: str) -> tuple[str, int]:
    proto, _, port = target.partition("/")
    return proto, int(port) if port.isdigit() else 0


def _cell(cell: _Cell) -> dict[str, Any]:
    result, info, expectation = cell.result, cell.service, cell.expectation
    verdict = expectation.verdict if expectation else None
    return {
        "state": cell.state,
        "verdict": verdict,
        "class": (verdict or cell.state).replace("|", "-"),
        "details": {
            "state": cell.state if result else None,
            "reason": result.reason if result else None,
            "service": result.service if result else None,
            "latency_ms": result.latency_ms if result else None,
            "attempts": result.attempts if result else None,
            "identified": info.describe() if info else None,
            "probe": service_to_dict(info) if info else None,
            "expected": expectation.expected if expectation else None,
            "verdict": verdict,
            "message": expectation.message if expectation else None,
        },
    }


# Inside <script>, "</script>" or "<!--" in a banner would end or bend the element: escape them.
_SCRIPT_SAFE = (
    ("&", "\\u0026"),
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def _embed(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False)
    for raw, escaped in _SCRIPT_SAFE:
        text = text.replace(raw, escaped)
    return text


def render_html(judged: JudgedReport) -> str:
    return _PAGE.replace("__DATA__", _embed(page_data(judged)))


def write_html(judged: JudgedReport, path: Path) -> None:
    write_text_atomically(path, render_html(judged))


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>portcheck report</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-top: 1em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: center; }
th.row { text-align: left; }
td { cursor: pointer; min-width: 4em; }
td.passed, td.open { background: #cfe8cf; }
td.closed { background: #eee; }
td.filtered, td.open-filtered { background: #dde4f0; }
td.failed { background: #f4b6b6; outline: 2px solid #c00; font-weight: bold; }
td.error { background: #f7d9a8; outline: 2px solid #b60; }
td.waived { background: #f3efb0; }
td.empty { background: #fff; color: #bbb; cursor: default; }
td.summary { text-align: left; color: #555; cursor: default; white-space: nowrap; }
td.dim { opacity: 0.15; }
tr.hidden { display: none; }
#drift li { color: #900; }
#details { background: #f6f6f6; padding: 1em; white-space: pre-wrap; min-height: 2em; }
</style>
</head>
<body>
<h1>portcheck report</h1>
<p id="meta"></p>
<h2>Drift</h2>
<ul id="drift"></ul>
<h2>Scan quality</h2>
<ul id="quality"></ul>
<label>Host <input id="host-filter" placeholder="part of a host or address"></label>
<label>State <select id="state-filter">
<option value="">any</option><option>open</option><option>closed</option><option>filtered</option>
<option>error</option><option>passed</option><option>failed</option><option>waived</option>
</select></label>
<table id="matrix"></table>
<h2>Details</h2>
<pre id="details">Click a cell.</pre>
<script type="application/json" id="portcheck-data">__DATA__</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("portcheck-data").textContent);
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
const summary = Object.entries(data.summary).map(([k, v]) => v + " " + k).join(", ");
let meta = "Scan started " + data.started + ". Results: " + summary + ".";
if (data.summarised) meta += " Per host, closed ports and the most common silent state are counted under" +
  " \u201cnot shown\u201d.";
if (data.truncated) meta += " Only the first " + data.columns.length + " columns are shown.";
if (data.rows_truncated) meta += " " + data.rows_truncated + " more host(s) not shown: see the JSON report.";
document.getElementById("meta").textContent = meta;
const drift = document.getElementById("drift");
if (!data.drift.length) drift.appendChild(el("li", "none", "ok"));
for (const item of data.drift) drift.appendChild(el("li", item.verdict + ": " + item.message));
const quality = document.getElementById("quality");
if (!data.quality.length) quality.appendChild(el("li", "every address answered without drops"));
for (const line of data.quality) quality.appendChild(el("li", line));
const table = document.getElementById("matrix");
const head = el("tr");
head.appendChild(el("th", "host / address"));
if (data.summarised) head.appendChild(el("th", "not shown"));
for (const column of data.columns) head.appendChild(el("th", column));
table.appendChild(head);
data.rows.forEach((row, r) => {
  const tr = el("tr");
  tr.dataset.host = (row.host + " " + row.address).toLowerCase();
  const label = row.address && row.address !== row.host ? row.host + " (" + row.address + ")" : row.host;
  tr.appendChild(el("th", label, "row"));
  if (data.summarised) tr.appendChild(el("td", row.not_shown, "summary"));
  data.grid[r].forEach((cell, c) => {
    if (cell === null) { tr.appendChild(el("td", "\\u2014", "empty")); return; }
    const td = el("td", cell.verdict ? cell.verdict : cell.state, "cell " + cell["class"]);
    td.dataset.state = cell.state;
    td.dataset.verdict = cell.verdict || "";
    td.addEventListener("click", () => {
      const lines = [row.host + " " + row.address + " " + data.columns[c]];
      for (const [key, value] of Object.entries(cell.details)) {
        if (value === null || value === undefined) continue;
        lines.push(key + ": " + (typeof value === "object" ? JSON.stringify(value, null, 1) : value));
      }
      document.getElementById("details").textContent = lines.join("\\n");
    });
    tr.appendChild(td);
  });
  table.appendChild(tr);
});
function applyFilters() {
  const host = document.getElementById("host-filter").value.trim().toLowerCase();
  const state = document.getElementById("state-filter").value;
  for (const tr of table.querySelectorAll("tr[data-host]")) {
    let shown = 0;
    for (const td of tr.querySelectorAll("td.cell")) {
      const match = !state || td.dataset.state === state || td.dataset.verdict === state;
      td.classList.toggle("dim", !match);
      if (match) shown += 1;
    }
    tr.classList.toggle("hidden", (host && !tr.dataset.host.includes(host)) || (state && !shown));
  }
}
document.getElementById("host-filter").addEventListener("input", applyFilters);
document.getElementById("state-filter").addEventListener("change", applyFilters);
</script>
</body>
</html>
"""
