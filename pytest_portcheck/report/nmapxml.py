"""nmap's XML format both ways: a scan report written as nmap writes ``-oX``, and nmap XML read back.

Writing follows nmap's own output (``xmloutputversion`` 1.05): one ``host`` per scanned address, each
non-open state holding more than 25 ports of a host summarised in ``extraports`` (with the ports
listed in ``extrareasons``, as nmap 7.90+ does), ``runstats`` at the end. ``ndiff`` and the usual
parsers read it. Every string, and above all what peers sent (banners, product names), is escaped,
and characters XML 1.0 cannot carry are written as ``\\xNN``.

Reading accepts nmap's files and ours through expat with every entity declaration, external entity
and DOCTYPE with content refused (nmap writes a bare ``<!DOCTYPE nmaprun>``, which passes), so an
entity-expansion bomb or an external reference fails before it expands. Peer text read back is
neutralised like a probe's. A file is written as every report file is, through ``atomicfile`` (never a
``.tmp`` name beside it that another user could plant as a symlink). Needs the standard library, the
engine's types, the report model and ``atomicfile`` only. Must not import pytest, yaml or the probes.
"""

from __future__ import annotations

import datetime
import re
import shlex
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from xml.parsers import expat

from pytest_portcheck import __version__
from pytest_portcheck.atomicfile import write_atomically
from pytest_portcheck.engine import PortState, ProbeResult, Resolution
from pytest_portcheck.engine.model import ResultKey, settings_from_options
from pytest_portcheck.ports import PortSpecError, Protocol, format_ports, parse_port_spec
from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.report.model import ReportError, ScanReport

XML_OUTPUT_VERSION = "1.05"
EXTRAPORTS_THRESHOLD = 25
"""nmap summarises a non-open state of a host when it holds more ports than this (without -v)."""
_NEVER_SUMMARISED = frozenset({PortState.OPEN, PortState.ERROR})
_STATE_NAMES = {PortState.ERROR: "unknown"}  # nmap has no "we could not probe": its closest word
_STATES_READ = {state.value: state for state in PortState if state is not PortState.ERROR}

# --- writing ------------------------------------------------------------------------------------

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)


def xml_attribute(text: object) -> str:
    """``text`` quoted for an attribute value: markup escaped, characters XML cannot hold as ``\\xNN``."""
    value = _NOT_XML.sub(lambda match: f"\\x{ord(match.group()):02x}", str(text))
    return '"' + value.translate(_ATTRIBUTE_ESCAPES) + '"'


def _comment(text: str) -> str:
    # "--" may not appear inside a comment; escaping the rest keeps a hostile name from closing it.
    return "<!-- " + xml_attribute(text)[1:-1].replace("--", "- -") + " -->"


def _epoch(started: str) -> int:
    try:
        return int(datetime.datetime.fromisoformat(started).timestamp())
    except ValueError:
        return 0


def _timestr(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%a %b %d %H:%M:%S %Y")


def dump_nmap_xml(report: ScanReport, stream: TextIO) -> None:
    """Write ``report`` as nmap XML; one pass over the results (they must be grouped by address)."""
    start = _epoch(report.started)
    end = start + round(report.elapsed_s)
    args = shlex.join(report.command) if report.command else "portcheck"
    stream.write('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n')
    stream.write(_comment(f"portcheck {__version__} scan initiated {_timestr(start)} as: {args}") + "\n")
    stream.write(
        # nmap.dtd allows scanner="nmap" only, and parsers check it; the comment above and args say
        # which tool wrote the file.
        f'<nmaprun scanner="nmap" args={xml_attribute(args)} start="{start}" '
        f"startstr={xml_attribute(_timestr(start))} version={xml_attribute(__version__)} "
        f'xmloutputversion="{XML_OUTPUT_VERSION}">\n'
    )
    for proto, ports in _scanned_ports(report.results).items():
        kind = "connect" if proto is Protocol.TCP else "udp"
        services = format_ports(ports)
        stream.write(
            f'<scaninfo type="{kind}" protocol="{proto.value}" numservices="{len(ports)}" '
            f"services={xml_attribute(services)}/>\n"
        )
    stream.write('<verbose level="0"/>\n<debugging level="0"/>\n')
    hosts = 0
    for resolution in report.resolutions:
        if resolution.error is not None:  # nmap leaves unresolved targets out of its XML too
            stream.write(_comment(f"{resolution.host}: not scanned, {resolution.error}") + "\n")
    for (host, address), results in _by_address(report.results):
        hosts += 1
        _write_host(stream, host, address, results, report, start, end)
    summary = (
        f"portcheck done at {_timestr(end)}; {hosts} IP address(es) ({hosts} host(s) up) "
        f"scanned in {report.elapsed_s:.2f} seconds"
    )
    stream.write(
        f'<runstats><finished time="{end}" timestr={xml_attribute(_timestr(end))} '
        f'summary={xml_attribute(summary)} elapsed="{report.elapsed_s:.2f}" '
        f'exit="{"error" if report.interrupted else "success"}"/>'
        f'<hosts up="{hosts}" down="0" total="{hosts}"/>\n</runstats>\n</nmaprun>\n'
    )


def _scanned_ports(results: Iterable[ProbeResult]) -> dict[Protocol, set[int]]:
    scanned: dict[Protocol, set[int]] = {}
    for result in results:
        scanned.setdefault(result.proto, set()).add(result.port)
    return dict(sorted(scanned.items(), key=lambda item: item[0].value))


def _by_address(results: Sequence[ProbeResult]) -> Iterator[tuple[tuple[str, str], list[ProbeResult]]]:
    """Runs of results of one (host, address), in report order; unresolved results have no host."""
    current: tuple[str, str] | None = None
    group: list[ProbeResult] = []
    for result in results:
        if result.address is None:
            continue
        key = (result.host, result.address)
        if key != current:
            if group and current is not None:
                yield current, group
            current, group = key, []
        group.append(result)
    if group and current is not None:
        yield current, group


def _write_host(
    stream: TextIO,
    host: str,
    address: str,
    results: list[ProbeResult],
    report: ScanReport,
    start: int,
    end: int,
) -> None:
    counts = Counter(result.state for result in results)
    summarised = {
        state for state, n in counts.items() if state not in _NEVER_SUMMARISED and n > EXTRAPORTS_THRESHOLD
    }
    kind = "ipv6" if ":" in address else "ipv4"
    stream.write(
        f'<host starttime="{start}" endtime="{end}"><status state="up" reason="user-set" reason_ttl="0"/>\n'
        f'<address addr={xml_attribute(address)} addrtype="{kind}"/>\n<hostnames>\n'
    )
    if host != address:
        stream.write(f'<hostname name={xml_attribute(host)} type="user"/>\n')
    stream.write("</hostnames>\n<ports>")
    for state in sorted(summarised, key=lambda s: -counts[s]):
        _write_extraports(stream, state, [r for r in results if r.state is state])
    for result in results:
        if result.state not in summarised:
            stream.write(_port_element(result, report) + "\n")
    stream.write("</ports>\n</host>\n")


def _write_extraports(stream: TextIO, state: PortState, results: list[ProbeResult]) -> None:
    stream.write(f'<extraports state="{_STATE_NAMES.get(state, state.value)}" count="{len(results)}">\n')
    by_reason: dict[tuple[str, Protocol], list[int]] = {}
    for result in results:
        by_reason.setdefault((result.reason, result.proto), []).append(result.port)
    for (reason, proto), ports in by_reason.items():
        stream.write(
            f'<extrareasons reason={xml_attribute(reason)} count="{len(ports)}" proto="{proto.value}" '
            f"ports={xml_attribute(format_ports(ports))}/>\n"
        )
    stream.write("</extraports>\n")


def _port_element(result: ProbeResult, report: ScanReport) -> str:
    state = _STATE_NAMES.get(result.state, result.state.value)
    text = (
        f'<port protocol="{result.proto.value}" portid="{result.port}">'
        f'<state state="{state}" reason={xml_attribute(result.reason)} reason_ttl="0"/>'
    )
    info = report.services.get((result.address or "", result.proto, result.port))
    if info is not None:
        fields = (("product", info.product), ("version", info.version))
        product = "".join(f" {name}={xml_attribute(value)}" for name, value in fields if value)
        text += f'<service name={xml_attribute(info.service)}{product} method="probed" conf="10"/>'
        if info.evidence:
            text += f'<script id="banner" output={xml_attribute(info.evidence)}/>'
    elif result.service != "unknown":
        text += f'<service name={xml_attribute(result.service)} method="table" conf="3"/>'
    return text + "</port>"


def write_nmap_xml(report: ScanReport, destination: str | Path) -> None:
    """Write the nmap XML to a file through ``atomicfile`` (WriteError naming the file when it
    cannot be written; the previous file is then intact), or to standard output for ``-``."""
    if str(destination) == "-":
        dump_nmap_xml(report, sys.stdout)
        sys.stdout.flush()
        return
    write_atomically(destination, lambda stream: dump_nmap_xml(report, stream))


# --- reading ------------------------------------------------------------------------------------


def is_xml_file(path: str | Path) -> bool:
    """Whether the file starts like XML (``<`` after an optional byte-order mark and blanks)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return False
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<")


class HostileXml(Exception):
    """XML that declares entities, refers outside the file, or carries a DOCTYPE with content."""


@dataclass(slots=True)
class _Reading:
    """What the parser has gathered so far."""

    args: str = ""
    start: int = 0
    elapsed: float = 0.0
    finished: bool = False
    exit: str = ""
    resolutions: dict[str, list[str]] = field(default_factory=dict)
    results: list[ProbeResult] = field(default_factory=list)
    services: dict[ResultKey, ServiceInfo] = field(default_factory=dict)
    saw_nmaprun: bool = False
    address: str | None = None
    names: list[tuple[str, str]] = field(default_factory=list)
    host_results: list[tuple[Protocol, int, PortState, str]] = field(default_factory=list)
    host_services: dict[tuple[Protocol, int], ServiceInfo] = field(default_factory=dict)
    port: tuple[Protocol, int] | None = None
    extra_state: str | None = None


def _refuse_doctype(name: str, system_id: str | None, public_id: str | None, has_subset: int) -> None:
    if system_id or public_id or has_subset:
        raise HostileXml(f"a DOCTYPE with content ({name!r}) is refused: it can declare or fetch entities")


def _refuse_entity(*_: object) -> None:
    raise HostileXml("entity declarations are refused (entity expansion)")


def _refuse_external(*_: object) -> int:
    raise HostileXml("external entities are refused")


def read_nmap_xml(path: str | Path) -> ScanReport:
    """Read an nmap XML file (nmap's ``-oX`` or ours) as a scan report; ReportError names the problem."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    reading = _Reading()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_external
    parser.StartElementHandler = lambda name, attrs: _start(reading, name, attrs)
    parser.EndElementHandler = lambda name: _end(reading, name)
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        problem = expat.errors.messages[exc.code]
        raise ReportError(f"{path}:{exc.lineno}: not well-formed XML: {problem}") from None
    except HostileXml as exc:
        raise ReportError(f"{path}:{parser.CurrentLineNumber}: {exc}") from None
    except (ValueError, KeyError, PortSpecError) as exc:
        raise ReportError(f"{path}:{parser.CurrentLineNumber}: not nmap XML as expected: {exc}") from None
    if not reading.saw_nmaprun:
        raise ReportError(f"{path}: not an nmap XML report (no <nmaprun> element)")
    return _report(reading)


def _start(reading: _Reading, name: str, attrs: dict[str, str]) -> None:
    if name == "nmaprun":
        reading.saw_nmaprun = True
        reading.args = attrs.get("args", "")
        reading.start = int(attrs.get("start", "0") or 0)
    elif name == "host":
        reading.address, reading.names, reading.host_results, reading.host_services = None, [], [], {}
    elif name == "address" and attrs.get("addrtype", "ipv4") in ("ipv4", "ipv6"):
        reading.address = neutralise(attrs["addr"])
    elif name == "hostname" and attrs.get("name"):
        reading.names.append((attrs.get("type", ""), neutralise(attrs["name"])))
    elif name == "port":
        reading.port = (Protocol(attrs["protocol"]), _port_number(attrs["portid"]))
    elif name == "state" and reading.port is not None:
        proto, port = reading.port
        reason = neutralise(attrs.get("reason", ""))
        reading.host_results.append((proto, port, _state(attrs["state"]), reason))
    elif name == "service" and reading.port is not None and attrs.get("method") == "probed":
        reading.host_services[reading.port] = ServiceInfo(
            neutralise(attrs.get("name", "unknown")),
            "",
            neutralise(attrs["product"]) if attrs.get("product") else None,
            neutralise(attrs["version"]) if attrs.get("version") else None,
        )
    elif name == "extraports":
        reading.extra_state = attrs["state"]
    elif name == "extrareasons" and reading.extra_state is not None and attrs.get("ports"):
        state, proto = _state(reading.extra_state), Protocol(attrs.get("proto", "tcp"))
        reason = neutralise(attrs.get("reason", ""))
        for _, port in parse_port_spec(attrs["ports"]):
            reading.host_results.append((proto, port, state, reason))
    elif name == "finished":
        reading.finished = True
        reading.elapsed = float(attrs.get("elapsed", "0") or 0)
        reading.exit = attrs.get("exit", "")


def _port_number(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return port


def _state(name: str) -> PortState:
    """nmap's word for a state; one we cannot represent (unfiltered, closed|filtered) is not a verdict."""
    state = _STATES_READ.get(name)
    if state is None:
        return PortState.ERROR
    return state


def _end(reading: _Reading, name: str) -> None:
    if name == "port":
        reading.port = None
    elif name == "extraports":
        reading.extra_state = None
    elif name == "host" and reading.address is not None:
        address = reading.address
        users = [n for kind, n in reading.names if kind == "user"]
        host = users[0] if users else address
        addresses = reading.resolutions.setdefault(host, [])
        if address not in addresses:
            addresses.append(address)
        for proto, port, state, reason in sorted(reading.host_results, key=lambda r: (r[0].value, r[1])):
            reading.results.append(ProbeResult(host, address, proto, port, state, reason))
        for (proto, port), info in reading.host_services.items():
            reading.services[(address, proto, port)] = info


def _report(reading: _Reading) -> ScanReport:
    started = datetime.datetime.fromtimestamp(reading.start, datetime.timezone.utc)
    try:
        command = shlex.split(reading.args)
    except ValueError:
        command = reading.args.split()
    return ScanReport(
        resolutions=[Resolution(host, tuple(addresses)) for host, addresses in reading.resolutions.items()],
        results=reading.results,
        settings=settings_from_options(),  # nmap's timing options do not map onto ours
        started=started.isoformat(timespec="seconds"),
        elapsed_s=reading.elapsed,
        interrupted=not reading.finished or reading.exit not in ("", "success"),
        command=command,
        services=reading.services,
    )
