"""nmap XML both ways: our -oX against nmap's own on loopback, ndiff, round trips, hostile XML refused."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ListenerFactory, portcheck, skip_or_fail

from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.ports import Protocol, service_name
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.report.diff import compare_reports
from pytest_portcheck.report.model import ReportError, ScanReport
from pytest_portcheck.report.nmapxml import dump_nmap_xml, read_nmap_xml

pytest_plugins = ["pytester"]


def need(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        skip_or_fail(f"{program} is missing: apt-get install {program}", "PORTCHECK_REQUIRE_SERVERS")
    assert found is not None
    return found


def nmap_service_ports() -> set[int]:
    """TCP ports nmap names from its own table (``nmap-services``), which differs from /etc/services."""
    known: set[int] = set()
    for table in Path("/usr/share/nmap/nmap-services"), Path("/usr/local/share/nmap/nmap-services"):
        if table.exists():
            for line in table.read_text(errors="replace").splitlines():
                fields = line.split()
                if len(fields) >= 2 and fields[1].endswith("/tcp"):
                    known.add(int(fields[1].split("/")[0]))
    return known


def unnamed_listeners(listen: ListenerFactory, count: int) -> list[int]:
    """Listeners on ports neither service table names, so that both tools describe them alike."""
    named = nmap_service_ports()
    ports: list[int] = []
    while len(ports) < count:
        sock = listen()
        port = int(sock.getsockname()[1])
        if port in named or service_name(Protocol.TCP, port) != "unknown":
            sock.close()
            continue
        ports.append(port)
    return ports


# --- against nmap itself -----------------------------------------------------------------------


def test_our_xml_matches_nmap_on_loopback(
    tmp_path: Path, listen: ListenerFactory, pytester: pytest.Pytester
) -> None:
    nmap, ndiff = need("nmap"), need("ndiff")
    opened = unnamed_listeners(listen, 3)
    # 1-40: closed on loopback, more than 25 of them, so both tools summarise them in <extraports>.
    spec = "1-40," + ",".join(map(str, opened))
    theirs, ours, ours_json = tmp_path / "nmap.xml", tmp_path / "ours.xml", tmp_path / "ours.json"
    done = subprocess.run(
        [nmap, "-sT", "-n", "-Pn", "-p", spec, "-oX", str(theirs), "127.0.0.1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scanned = portcheck("scan", "127.0.0.1", "-p", spec, "-oX", str(ours), "--json", str(ours_json))
    assert scanned.returncode == 0, scanned.stderr

    compared = subprocess.run([ndiff, str(theirs), str(ours)], capture_output=True, text=True, timeout=60)
    assert compared.returncode == 0, compared.stdout + compared.stderr  # ndiff: 0 means no differences
    assert not [line for line in compared.stdout.splitlines() if "/tcp" in line]
    document = ET.parse(ours).getroot()
    assert document.tag == "nmaprun" and document.find("runstats/finished") is not None
    [extraports] = document.iter("extraports")
    assert extraports.get("state") == "closed" and extraports.get("count") == "40"
    assert sorted(int(p.get("portid", "0")) for p in document.iter("port")) == sorted(opened)

    assert portcheck("diff", str(theirs), str(ours_json)).returncode == 0
    assert portcheck("diff", str(ours), str(ours_json)).returncode == 0
    page = tmp_path / "page.html"
    assert portcheck("report", str(theirs), "-o", str(page)).returncode == 0
    assert all(f"tcp/{port}" in page.read_text() for port in opened)

    # nmap's file as an inventory: a fresh snapshot of an unchanged host passes.
    snapshot = pytester.path / "inventory.yml"
    made = portcheck("snapshot", "--from", str(theirs), "-o", str(snapshot))
    assert made.returncode == 0, made.stderr
    pytester.runpytest("--portcheck", "inventory.yml").assert_outcomes(passed=len(opened) + 1)


def test_our_xml_is_valid_against_nmaps_dtd(tmp_path: Path) -> None:
    xmllint = need("xmllint")
    dtd = Path("/usr/share/nmap/nmap.dtd")
    if not dtd.exists():
        skip_or_fail("nmap.dtd is missing: apt-get install nmap", "PORTCHECK_REQUIRE_SERVERS")
    udp = ProbeResult("fw.example", "10.9.8.7", Protocol.UDP, 53, PortState.OPEN_FILTERED, "no-response")
    failed = ProbeResult("fw.example", "10.9.8.7", Protocol.TCP, 7, PortState.ERROR, "local-error: EMFILE")
    info = ServiceInfo("ssh", HOSTILE, "OpenSSH", "9.2p1")
    report = report_with([*firewalled(), failed, udp], services={("10.9.8.7", Protocol.TCP, 22): info})
    path = tmp_path / "scan.xml"
    path.write_text(xml_of(report), encoding="utf-8")
    checked = subprocess.run([xmllint, "--noout", "--dtdvalid", str(dtd), str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_diff_sees_a_port_nmap_found_closed_now_open(tmp_path: Path, listen: ListenerFactory) -> None:
    nmap = need("nmap")
    [before] = unnamed_listeners(listen, 1)
    closing = socket.socket()
    closing.bind(("127.0.0.1", 0))
    later = closing.getsockname()[1]
    closing.close()
    theirs, ours = tmp_path / "nmap.xml", tmp_path / "ours.json"
    spec = f"{before},{later}"
    subprocess.run([nmap, "-sT", "-n", "-Pn", "-p", spec, "-oX", str(theirs), "127.0.0.1"], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    listen(port=later)
    assert portcheck("scan", "127.0.0.1", "-p", spec, "--json", str(ours)).returncode == 0
    different = portcheck("diff", str(theirs), str(ours))
    assert different.returncode == 1
    assert f"+ opened   127.0.0.1 127.0.0.1 tcp/{later}: closed -> open" in different.stdout


# --- our writer, read back ----------------------------------------------------------------------

HOSTILE = '"><script>alert(1)</script>&amp; \x00\x1b[2J --> ]]>\ud800'


def report_with(results: list[ProbeResult], **extra: object) -> ScanReport:
    hosts = list(dict.fromkeys(r.host for r in results))
    resolutions = [Resolution(h, tuple(dict.fromkeys(r.address for r in results if r.host == h and r.address)))
                   for h in hosts]  # fmt: skip
    return ScanReport(resolutions, results, ScanSettings(), "2026-11-27T10:00:00+00:00", 3.25, **extra)  # type: ignore[arg-type]


def firewalled(address: str = "10.9.8.7", host: str = "fw.example") -> list[ProbeResult]:
    results = []
    for port in range(1, 201):
        if port in (22, 80):
            results.append(ProbeResult(host, address, Protocol.TCP, port, PortState.OPEN, "syn-ack", 1.0, 1))
        elif port == 113:
            results.append(ProbeResult(host, address, Protocol.TCP, port, PortState.CLOSED, "conn-refused", 1.0, 1))
        elif port == 150:
            results.append(ProbeResult(host, address, Protocol.TCP, port, PortState.FILTERED, "admin-prohibited"))
        else:
            results.append(ProbeResult(host, address, Protocol.TCP, port, PortState.FILTERED, "no-response", None, 2))
    return results


def xml_of(report: ScanReport) -> str:
    buffer = io.StringIO()
    dump_nmap_xml(report, buffer)
    return buffer.getvalue()


def test_round_trip_keeps_every_state_and_reason(tmp_path: Path) -> None:
    original = report_with(firewalled())
    path = tmp_path / "scan.xml"
    path.write_text(xml_of(original))
    root = ET.parse(path).getroot()
    [extraports] = root.iter("extraports")  # 197 filtered ports, two reasons: one summary
    assert (extraports.get("state"), extraports.get("count")) == ("filtered", "197")
    reasons = {e.get("reason"): e.get("ports") for e in extraports.iter("extrareasons")}
    assert reasons == {"no-response": "1-21,23-79,81-112,114-149,151-200", "admin-prohibited": "150"}
    assert [p.get("portid") for p in root.iter("port")] == ["22", "80", "113"]
    back = read_nmap_xml(path)
    assert compare_reports(original, back).equal
    assert [(r.port, r.state, r.reason) for r in back.results] == [
        (r.port, r.state, r.reason) for r in original.results
    ]
    assert back.resolutions == [Resolution("fw.example", ("10.9.8.7",))]


def test_peer_text_and_names_are_escaped(tmp_path: Path) -> None:
    result = ProbeResult("127.0.0.1", "127.0.0.1", Protocol.TCP, 2222, PortState.OPEN, "syn-ack", 0.1, 1)
    info = ServiceInfo("ssh", HOSTILE, product=HOSTILE, version="1<2")
    error = ProbeResult(HOSTILE, None, Protocol.TCP, 1, PortState.ERROR, f"dns-error: {HOSTILE}")
    report = report_with([result], services={("127.0.0.1", Protocol.TCP, 2222): info})
    report = ScanReport([*report.resolutions, Resolution(HOSTILE, (), f"dns-error: {HOSTILE}")],
                        [error, result], report.settings, report.started, 1.0, services=report.services)  # fmt: skip
    text = xml_of(report)
    assert "<script>" not in text and "\x00" not in text and "\x1b" not in text
    path = tmp_path / "hostile.xml"
    path.write_text(text, encoding="utf-8")
    root = ET.parse(path).getroot()  # well-formed: nothing closed early
    [service] = root.iter("service")
    assert service.get("product") == HOSTILE.replace("\x00", "\\x00").replace("\x1b", "\\x1b").replace(
        "\ud800", "\\xd800"
    )
    assert [s.get("output") for s in root.iter("script")] == [service.get("product")]
    back = read_nmap_xml(path)
    assert back.services[("127.0.0.1", Protocol.TCP, 2222)].version == "1<2"
    assert "\x1b" not in (back.services[("127.0.0.1", Protocol.TCP, 2222)].product or "")


def test_error_results_are_kept_as_unknown(tmp_path: Path) -> None:
    failed = ProbeResult("box", "127.0.0.1", Protocol.TCP, 7, PortState.ERROR, "local-error: EMFILE")
    path = tmp_path / "scan.xml"
    path.write_text(xml_of(report_with([failed])))
    [state] = ET.parse(path).getroot().iter("state")
    assert (state.get("state"), state.get("reason")) == ("unknown", "local-error: EMFILE")
    assert read_nmap_xml(path).results[0].state is PortState.ERROR  # never read back as an answer


def test_scan_to_stdout_moves_the_human_output(listen: ListenerFactory) -> None:
    port = listen().getsockname()[1]
    done = portcheck("scan", "127.0.0.1", "-p", str(port), "-oX", "-")
    assert done.returncode == 0, done.stderr
    root = ET.fromstring(done.stdout)
    assert [p.get("portid") for p in root.iter("port")] == [str(port)]
    assert "Summary:" in done.stderr
    both = portcheck("scan", "127.0.0.1", "-p", str(port), "-oX", "-", "--json", "-")
    assert both.returncode == 2 and "cannot both use stdout" in both.stderr


def test_xml_file_never_follows_a_symlink_planted_beside_it(tmp_path: Path, listen: ListenerFactory) -> None:
    # A shared folder (sticky, world-writable, as /tmp) where another user planted FILE.tmp and FILE
    # as symlinks to a file of root's: writing -oX FILE as root must touch neither target.
    port = listen().getsockname()[1]
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    destination = shared / "scan.xml"
    for planted in (shared / "scan.xml.tmp", destination):
        planted.symlink_to(victim)
        os.lchown(planted, 65534, 65534)  # nobody's links
    done = portcheck("scan", "127.0.0.1", "-p", str(port), "-oX", str(destination))
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "precious\n"
    assert not destination.is_symlink()
    assert [p.get("portid") for p in ET.parse(destination).getroot().iter("port")] == [str(port)]
    assert (shared / "scan.xml.tmp").is_symlink()  # left alone, never written through
    assert sorted(p.name for p in shared.iterdir()) == ["scan.xml", "scan.xml.tmp"]  # no temporary left


def test_unwritable_xml_file_is_refused_before_scanning(tmp_path: Path) -> None:
    done = portcheck("scan", "127.0.0.1", "-p", "1", "-oX", str(tmp_path / "missing" / "scan.xml"))
    assert done.returncode == 2, done.stdout
    assert f"{tmp_path / 'missing' / 'scan.xml'}: cannot write: the directory" in done.stderr
    assert "Summary" not in done.stdout and "Traceback" not in done.stderr  # nothing was scanned


def test_xml_file_failing_while_written_exits_2_after_the_other_report(tmp_path: Path) -> None:
    report = tmp_path / "scan.json"
    done = portcheck("scan", "127.0.0.1", "-p", "1", "-oX", "/dev/full", "--json", str(report))
    assert done.returncode == 2
    assert "/dev/full: cannot write: No space left on device" in done.stderr
    assert json.loads(report.read_text())["version"] == 1  # the JSON report is still written
    assert "Traceback" not in done.stderr


def test_our_xml_keeps_the_target_as_given_for_a_baseline(tmp_path: Path) -> None:
    # nmap's own files name no block (each address is a host of its own); ours keep the target.
    results = [
        ProbeResult("127.0.0.0/31", address, Protocol.TCP, 22, PortState.CLOSED, "conn-refused", 0.1, 1)
        for address in ("127.0.0.0", "127.0.0.1")
    ]
    path = tmp_path / "scan.xml"
    path.write_text(xml_of(report_with(results)))
    assert read_nmap_xml(path).resolutions == [Resolution("127.0.0.0/31", ("127.0.0.0", "127.0.0.1"))]
    inventory = portcheck("snapshot", "--from", str(path))
    assert inventory.returncode == 0, inventory.stderr
    assert '    address: "127.0.0.0/31"\n' in inventory.stdout and inventory.stdout.count("address:") == 1


def test_snapshot_from_xml_of_an_interrupted_scan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "partial.xml"
    path.write_text(xml_of(report_with(firewalled(), interrupted=True)))
    refused = portcheck("snapshot", "--from", str(path))
    assert refused.returncode == 2 and "an interrupted scan (partial report)" in refused.stderr
    assert "pass --allow-interrupted" in refused.stderr and refused.stdout == ""


# --- hostile and broken input -------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE nmaprun [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<nmaprun args="&d;"></nmaprun>
"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE nmaprun [<!ENTITY secret SYSTEM "file:///etc/hostname">]>
<nmaprun args="&secret;"></nmaprun>
"""
EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE nmaprun SYSTEM "http://127.0.0.1:9/nmap.dtd">
<nmaprun></nmaprun>
"""
PARAMETER = """<?xml version="1.0"?>
<!DOCTYPE nmaprun [<!ENTITY % remote SYSTEM "file:///etc/hostname"> %remote;]>
<nmaprun></nmaprun>
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (BILLION_LAUGHS, "2: a DOCTYPE with content ('nmaprun') is refused"),
        (EXTERNAL, "2: a DOCTYPE with content ('nmaprun') is refused"),
        (EXTERNAL_DTD, "2: a DOCTYPE with content ('nmaprun') is refused"),
        (PARAMETER, "2: a DOCTYPE with content ('nmaprun') is refused"),
        ('<?xml version="1.0"?>\n<nmaprun>\n<host>\n</nmaprun>\n', "4: not well-formed XML: mismatched tag"),
        ("<report/>\n", "not an nmap XML report (no <nmaprun> element)"),
        ('<nmaprun><host><address addr="127.0.0.1"/><ports><port protocol="tcp" portid="x">'
         "</port></ports></host></nmaprun>", "1: not nmap XML as expected"),
    ],
)  # fmt: skip
def test_hostile_or_broken_xml_exits_2_naming_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "scan.xml"
    path.write_text(text)
    with pytest.raises(ReportError) as caught:
        read_nmap_xml(path)
    assert str(caught.value).startswith(str(path))
    for command in (["diff", str(path), str(path)], ["report", str(path), "-o", str(tmp_path / "p.html")],
                    ["snapshot", "--from", str(path)]):  # fmt: skip
        done = portcheck(*command)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert f"{path}:{problem}" in done.stderr or f"{path}: {problem}" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "p.html").exists()


def test_json_reports_still_read_and_junk_still_exits_2(tmp_path: Path, listen: ListenerFactory) -> None:
    port = listen().getsockname()[1]
    report = tmp_path / "scan.json"
    assert portcheck("scan", "127.0.0.1", "-p", str(port), "--json", str(report)).returncode == 0
    inventory = portcheck("snapshot", "--from", str(report))
    assert inventory.returncode == 0 and f"- {port}" in inventory.stdout
    assert json.loads(report.read_text())["version"] == 1
    both = portcheck("snapshot", "127.0.0.1", "--from", str(report))
    assert both.returncode == 2 and "takes no targets" in both.stderr
    neither = portcheck("snapshot")
    assert neither.returncode == 2 and "needs targets" in neither.stderr
