"""The report format: the fast line encoder agrees with the dict form, and reports read back whole."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.engine.model import port_key, result_key
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import NameAnswer, ServiceInfo, TlsInfo
from pytest_portcheck.report.decode import report_from_dict, stats_from_quality
from pytest_portcheck.report.encode import _result_fields, _result_json, dump_report, report_to_dict
from pytest_portcheck.report.model import ScanReport

results = st.builds(
    ProbeResult,
    host=st.text(max_size=20),
    address=st.none() | st.text(max_size=20),
    proto=st.sampled_from(Protocol),
    port=st.integers(1, 65535),
    state=st.sampled_from(PortState),
    reason=st.text(max_size=30),
    latency_ms=st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
    attempts=st.integers(0, 9),
)


@given(results)
def test_line_encoder_matches_the_dict_form(result: ProbeResult) -> None:
    assert json.loads(_result_json(result)) == _result_fields(result)


def test_report_reads_back_with_services() -> None:
    open_result = ProbeResult("web", "127.0.0.1", Protocol.TCP, 443, PortState.OPEN, "syn-ack", 0.2, 1)
    silent = ProbeResult(
        "web", "127.0.0.1", Protocol.UDP, 161, PortState.OPEN_FILTERED, "no-response", 500.0, 2
    )
    unresolved = ProbeResult("ghost", None, Protocol.TCP, 22, PortState.ERROR, "dns-error: nope")
    tls = TlsInfo(
        "TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=web", "CN=web", "2027-01-01T00:00:00+00:00", 35, False
    )
    info = ServiceInfo("https", "HTTP/1.1 200 OK", "nginx", "1.22.1", tls)
    key = result_key(open_result)
    assert key is not None
    report = ScanReport(
        [Resolution("web", ("127.0.0.1",)), Resolution("ghost", (), "dns-error: nope")],
        [open_result, silent, unresolved],
        ScanSettings(timeout=0.5, retries=2, window=100),
        "2026-11-27T00:00:00+00:00",
        1.5,
        services={key: info},
    )
    stream = io.StringIO()
    dump_report(report, stream, {"expectations": []})
    document = json.loads(stream.getvalue())
    assert document["summary"] == {"open": 1, "closed": 0, "filtered": 0, "open|filtered": 1, "error": 1}
    assert document["expectations"] == []
    back = report_from_dict(document)
    assert list(back.results) == [open_result, silent, unresolved]
    assert back.services == {key: info}
    assert list(back.resolutions) == list(report.resolutions)
    assert (back.settings.timeout, back.settings.retries, back.settings.window) == (0.5, 2, 100)
    # The in-memory document the HTML page is built from is the written one, without a JSON text between.
    assert report_to_dict(report, {"expectations": []}) == document


def test_per_name_verifications_and_auth_notes_read_back() -> None:
    # xdist workers and judge mode read the probes' answers from the report: what a name's own probe
    # found, and why auth is what it is, must survive the trip.
    tls = TlsInfo("TLSv1.3", "c", "CN=web", "CN=web", "2027-01-01T00:00:00+00:00", 35, False)
    names = (NameAnswer(None, False, "certificate verification failed: IP address mismatch"),
             NameAnswer("web.test", True))  # fmt: skip
    merged = ServiceInfo("elasticsearch", "HTTP/1.1 200 OK", tls=tls, auth="none",
                         auth_note='anonymous requests act as user "_anonymous"', names=names)  # fmt: skip
    plain = ServiceInfo("ssh", "SSH-2.0-x")
    found = [ProbeResult("web", "127.0.0.1", Protocol.TCP, port, PortState.OPEN, "syn-ack", 0.2, 1)
             for port in (22, 443)]  # fmt: skip
    https, ssh = port_key("127.0.0.1", Protocol.TCP, 443), port_key("127.0.0.1", Protocol.TCP, 22)
    report = ScanReport([Resolution("web", ("127.0.0.1",))], found, ScanSettings(), "", 0.0,
                        services={https: merged, ssh: plain})  # fmt: skip
    stream = io.StringIO()
    dump_report(report, stream)
    document = json.loads(stream.getvalue())
    assert "names" not in document["results"][0]["probe"]  # only where names met on the port
    back = report_from_dict(document).services
    assert back == {https: merged, ssh: plain}
    assert back[https].as_asked_by("web.test").tls == replace(tls, verified=True)
    assert back[https].as_asked_by("127.0.0.1").error == names[0].error


def test_scan_quality_reads_back_and_older_reports_have_none() -> None:
    from pytest_portcheck.engine import AddressQuality, ScanStats

    stats = ScanStats()
    stats.note(
        AddressQuality("192.0.2.7", 1800.5, drops=40, retries=55, reexaminations=9, unresolved=2, slowdowns=3)
    )
    report = ScanReport([], [], ScanSettings(max_rate=2000.0), "2026-11-27T00:00:00+00:00", 1.0, stats)
    stream = io.StringIO()
    dump_report(report, stream)
    document = json.loads(stream.getvalue())
    assert document["scan_quality"][0]["limited"] is True
    assert document["settings"]["max_rate"] == 2000.0
    back = report_from_dict(document)
    assert back.stats.addresses == stats.addresses
    assert back.settings.max_rate == 2000.0
    del document["scan_quality"], document["settings"]["max_rate"]
    older = report_from_dict(document)  # a report written before scan quality existed
    assert older.stats.addresses == {} and older.settings.max_rate is None


def test_html_page_lists_scan_quality_as_text() -> None:
    from pytest_portcheck.report.html import render_html
    from pytest_portcheck.report.judged import JudgedReport

    entry = {"address": "192.0.2.9", "rate_pps": 900.0, "drops": 5, "retries": 6, "reexaminations": 1}
    stats = stats_from_quality([{**entry, "unresolved": 1}])
    report = ScanReport([], [], ScanSettings(), "", 0.0, stats)
    page = render_html(JudgedReport(report))
    data = page.split('id="portcheck-data">', 1)[1]
    assert "192.0.2.9 dropped 5 probe(s)" in data and "UNRESOLVED on 1 port(s)" in data
    quiet = render_html(JudgedReport(ScanReport([], [], ScanSettings(), "", 0.0))).split(
        'id="portcheck-data">', 1
    )[1]
    assert '"quality": []' in quiet and "dropped" not in quiet.split("</script>", 1)[0]
