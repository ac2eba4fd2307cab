"""The HTML report: one self-contained page (no external assets) from a JSON report.

A hosts x ports matrix coloured by verdict (or by state for a plain scan), filters by host and state,
drift listed first, and each cell's details on click. The data travels as JSON inside the page with
``<``, ``>`` and ``&`` escaped, and the script builds the page with ``textContent`` only, so nothing a
scanned peer sent (banners) can become markup or script. A Content-Security-Policy forbids any load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_portcheck.results import ReportError, quality_notes, report_from_dict, stats_from_quality

MAX_COLUMNS = 400
_QUIET_STATES = {"closed"}


def read_report_document(path: str | Path) -> dict[str, Any]:
    """The JSON report as a document, checked to be one (ReportError otherwise)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        report_from_dict(document)
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{path}: not a portcheck JSON report ({exc})") from None
    if not isinstance(document, dict):
        raise ReportError(f"{path}: not a portcheck JSON report")
    return document


def page_data(document: Mapping[str, Any]) -> dict[str, Any]:
    """What the page shows, computed here so that the script only draws."""
    verdicts: dict[tuple[str, str, str], dict[str, Any]] = {}
    for expectation in document.get("expectations", []):
        for found in expectation.get("found") or [{"address": ""}]:
            key = (str(expectation["host"]), str(found.get("address") or ""), str(expectation["target"]))
            verdicts[key] = expectation
    rows: dict[tuple[str, str], int] = {}
    columns: dict[str, int] = {}
    cells: dict[tuple[str, str, str], dict[str, Any]] = {}
    for result in document["results"]:
        host, address = str(result["host"]), str(result["address"] or "")
        target = f"{result['proto']}/{result['port']}"
        cells[(host, address, target)] = result
    # Names: an inventory names hosts itself; results name the address they resolved.
    by_target = {(addr, target): value for (_, addr, target), value in cells.items()}
    for (host, address, target), expectation in verdicts.items():
        result = by_target.get((address, target), {})
        cells[(host, address, target)] = {**result, "host": host, "expectation": expectation}
    interesting = [
        key for key, cell in cells.items() if "expectation" in cell or cell.get("state") not in _QUIET_STATES
    ]
    if document.get("expectations"):
        interesting = [key for key in interesting if "expectation" in cells[key]]
    for host, address, target in interesting:  # rows in report order: inventory order for the plugin
        rows.setdefault((host, address), len(rows))
        columns.setdefault(target, len(columns))
    truncated = len(columns) > MAX_COLUMNS
    kept = dict(list(sorted(columns.items(), key=lambda item: _target_order(item[0])))[:MAX_COLUMNS])
    column_list = list(kept)
    row_list = list(rows)
    grid = []
    for host, address in row_list:
        line = []
        for target in column_list:
            cell = cells.get((host, address, target))
            line.append(None if cell is None else _cell(cell))
        grid.append(line)
    drift = [
        {"nodeid": e.get("nodeid", ""), "verdict": e["verdict"], "message": e.get("message", "")}
        for e in document.get("expectations", [])
        if e.get("verdict") in ("failed", "error")
    ]
    return {
        "title": "portcheck report",
        "started": document.get("started", ""),
        "summary": document.get("summary", {}),
        "rows": [{"host": host, "address": address} for host, address in row_list],
        "columns": column_list,
        "grid": grid,
        "drift": drift,
        "quality": quality_notes(stats_from_quality(document.get("scan_quality") or [])),
        "truncated": truncated,
        "quiet_ports": sum(1 for key in cells if key not in set(interesting)),
    }


def _target_order(target: str) -> tuple[str, int]:
    proto, _, port = target.partition("/")
    return proto, int(port) if port.isdigit() else 0


def _cell(cell: Mapping[str, Any]) -> dict[str, Any]:
    expectation = cell.get("expectation")
    verdict = expectation["verdict"] if expectation else None
    probe = cell.get("probe")
    return {
        "state": cell.get("state", "unknown"),
        "verdict": verdict,
        "class": (verdict or cell.get("state", "unknown")).replace("|", "-"),
        "details": {
            "state": cell.get("state"),
            "reason": cell.get("reason"),
            "service": cell.get("service"),
            "latency_ms": cell.get("latency_ms"),
            "attempts": cell.get("attempts"),
            "probe": probe,
            "expected": expectation.get("expected") if expectation else None,
            "verdict": verdict,
            "message": expectation.get("message") if expectation else None,
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


def render_html(document: Mapping[str, Any]) -> str:
    return _PAGE.replace("__DATA__", _embed(page_data(document)))


def write_html(document: Mapping[str, Any], path: Path) -> None:
    path.write_text(render_html(document), encoding="utf-8")


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
if (data.quiet_ports) meta += " " + data.quiet_ports + " closed port(s) without expectations are not shown.";
if (data.truncated) meta += " Only the first columns are shown.";
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
for (const column of data.columns) head.appendChild(el("th", column));
table.appendChild(head);
data.rows.forEach((row, r) => {
  const tr = el("tr");
  tr.dataset.host = (row.host + " " + row.address).toLowerCase();
  const label = row.address && row.address !== row.host ? row.host + " (" + row.address + ")" : row.host;
  tr.appendChild(el("th", label, "row"));
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
