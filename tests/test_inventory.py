"""Inventory loading: the valid format, and a corpus of broken files that must each name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.engine.model import ResultKey
from pytest_portcheck.inventory.load import load_inventory
from pytest_portcheck.inventory.model import Expect, InventoryError, ServiceRequirement, TlsRequirement
from pytest_portcheck.inventory.snapshot import snapshot_inventory
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.report.model import ScanReport

VALID = """\
version: 1
defaults:
  timeout: 0.5
  retries: 2
hosts:
  web:
    address: 127.0.0.1
    open: [22, 80, 443]
    closed: [5432, 3306, "6379", "8000-8002"]
    filtered: [9200]
  db.example.com:
    timeout: 2
    closed: ["5432/tcp"]
"""


def write(tmp_path: Path, text: str | bytes, name: str = "inventory.yml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_valid_inventory(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, VALID))
    web, db = inventory.hosts
    assert (web.name, web.address, web.timeout, web.retries, web.line) == ("web", "127.0.0.1", 0.5, 2, 6)
    assert (db.name, db.address, db.timeout, db.retries) == ("db.example.com", "db.example.com", 2, 2)
    opens = [e.port for e in web.expectations if e.expect is Expect.OPEN]
    closed = [e.port for e in web.expectations if e.expect is Expect.CLOSED]
    assert opens == [22, 80, 443]
    assert closed == [5432, 3306, 6379, 8000, 8001, 8002]
    assert [e.port for e in web.expectations if e.expect is Expect.FILTERED] == [9200]
    assert {e.line for e in web.expectations if e.port in (8000, 8001, 8002)} == {9}
    assert db.expectations[0].proto is Protocol.TCP and db.expectations[0].line == 13


def test_service_entries(tmp_path: Path) -> None:
    text = (
        "hosts:\n  w:\n    address: 127.0.0.1\n    open:\n      - 80\n      - {port: 22, service: ssh}\n"
        "      - port: 443\n        service: https\n        tls: {min_version: TLSv1.2, expires_in_days: 14}\n"
        "      - {port: 6379, service: redis, auth: required}\n"
    )
    by_port = {e.port: e for e in load_inventory(write(tmp_path, text)).hosts[0].expectations}
    assert by_port[80].service is None
    assert by_port[22].service == ServiceRequirement("ssh")
    assert by_port[443].service == ServiceRequirement("https", TlsRequirement("TLSv1.2", 14, False))
    assert by_port[443].line == 7
    assert by_port[6379].service == ServiceRequirement("redis", None, "required")


def test_expectations_are_in_file_order(tmp_path: Path) -> None:
    text = "hosts:\n  b:\n    address: 127.0.0.1\n    closed: [3]\n    open: [1]\n  a:\n    open: [2]\n"
    inventory = load_inventory(write(tmp_path, text))
    order = [(host.name, e.port) for host, e in inventory.expectations()]
    # expectations keep host order; within a host, open/closed/filtered lists in that order
    assert [name for name, _ in order] == ["b", "b", "a"]
    assert sorted(order) == [("a", 2), ("b", 1), ("b", 3)]


# Every broken file: (name, content, line, words the message must contain).
CORPUS: list[tuple[str, str | bytes, int, str]] = [
    (
        "rate-zero",
        "defaults:\n  max_rate: 0\nhosts:\n  w:\n    closed: [22]\n",
        2,
        "max_rate in defaults must be more",
    ),
    (
        "rate-order",
        "hosts:\n  w:\n    max_rate: 10\n    min_rate: 100\n    closed: [22]\n",
        4,
        "min_rate (100) is above max_rate (10)",
    ),
    ("empty", "", 0, "is empty"),
    ("only-comment", "# nothing\n", 0, "is empty"),
    ("not-a-mapping", "- 22\n- 80\n", 1, "must be a mapping"),
    ("scalar-root", "hello\n", 1, "must be a mapping"),
    ("bad-yaml-flow", "hosts:\n  web: {open: [22\n", 3, "invalid YAML"),
    ("bad-yaml-indent", "hosts:\n  web:\n    open: [22]\n   closed: [1]\n", 4, "invalid YAML"),
    ("tab-indent", "hosts:\n\tweb:\n", 2, "invalid YAML"),
    ("unknown-top-key", "hots:\n  web:\n    open: [22]\n", 1, "did you mean 'hosts'?"),
    ("unknown-host-key", "hosts:\n  web:\n    closd: [22]\n", 3, "did you mean 'closed'?"),
    (
        "unknown-default-key",
        "defaults:\n  timout: 1\nhosts:\n  web:\n    open: [1]\n",
        2,
        "did you mean 'timeout'?",
    ),
    ("no-hosts", "version: 1\n", 1, "no 'hosts:' section"),
    ("hosts-empty", "hosts:\n", 1, "'hosts:' is empty"),
    ("hosts-empty-map", "hosts: {}\n", 1, "'hosts:' is empty"),
    ("hosts-list", "hosts:\n  - web\n", 2, "hosts must be a mapping"),
    ("host-nothing", "hosts:\n  web:\n", 2, "declares nothing"),
    ("host-no-ports", "hosts:\n  web:\n    address: 127.0.0.1\n", 2, "declares no ports"),
    ("bad-version", "version: 2\nhosts:\n  web:\n    open: [1]\n", 1, "unsupported version"),
    ("version-true", "version: true\nhosts:\n  web:\n    open: [1]\n", 1, "unsupported version"),
    ("duplicate-host", "hosts:\n  web:\n    open: [22]\n  web:\n    open: [80]\n", 4, "appears twice"),
    ("open-and-closed", 'hosts:\n  web:\n    open: [22]\n    closed: ["20-30"]\n', 4, "both open (line 3)"),
    ("twice-in-list", "hosts:\n  web:\n    open: [22, 21-23]\n", 3, "listed twice under open"),
    ("port-zero", "hosts:\n  web:\n    open: [0]\n", 3, "out of range"),
    ("port-too-big", "hosts:\n  web:\n    closed: [\n      70000]\n", 4, "port 70000"),
    ("reversed-range", 'hosts:\n  web:\n    closed: ["30-20"]\n', 3, "reversed"),
    ("junk-port", "hosts:\n  web:\n    closed: [http]\n", 3, "not a port number"),
    ("float-port", "hosts:\n  web:\n    closed: [22.5]\n", 3, "must be a number or text"),
    ("bool-port", "hosts:\n  web:\n    closed: [yes]\n", 3, "read by YAML as the boolean true"),
    ("bool-port-plain", "hosts:\n  web:\n    closed: [true]\n", 3, "must be a number or text"),
    # YAML 1.1 octal: 0443 would be port 291, 010 port 8, 022 port 18.
    (
        "octal-ports",
        "hosts:\n  web:\n    closed: [0443, 010, 022]\n",
        3,
        "octal number 291): drop the zero (443)",
    ),
    ("octal-port-later", "hosts:\n  web:\n    closed:\n      - 22\n      - 010\n", 5, "octal number 8)"),
    ("leading-zero-08", "hosts:\n  web:\n    closed: [08]\n", 3, "starts with a zero: drop the zero (8)"),
    (
        "octal-port-key",
        "hosts:\n  web:\n    closed:\n      - {port: 0443, waive: {until: 2026-12-31, reason: x}}\n",
        4,
        "octal number 291",
    ),
    ("octal-only-open", "hosts:\n  web:\n    only_open: [022]\n", 3, "octal number 18"),
    ("octal-range", "hosts:\n  web:\n    only_open: []\n    range: 0443\n", 4, "octal number 291"),
    ("octal-retries", "hosts:\n  web:\n    retries: 010\n    closed: [1]\n", 3, "octal number 8"),
    (
        "hex-timeout",
        "hosts:\n  web:\n    timeout: 0x10\n    closed: [1]\n",
        3,
        "read by YAML as the number 16",
    ),
    ("underscore-retries", "hosts:\n  web:\n    retries: 1_0\n    closed: [1]\n", 3, "as the number 10"),
    (
        "octal-days",
        "hosts:\n  w:\n    open:\n      - {port: 443, service: tls, tls: {expires_in_days: 014}}\n",
        4,
        "octal number 12",
    ),
    (
        "yes-verify",
        "hosts:\n  w:\n    open:\n      - {port: 443, service: tls, tls: {verify: yes}}\n",
        4,
        "write true or false",
    ),
    ("on-silence", "hosts:\n  w:\n    silence_counts_as_closed: on\n    closed: [1]\n", 3, "boolean true"),
    (
        "service-on-udp",
        'hosts:\n  w:\n    open:\n      - {port: "6379/udp", service: redis}\n',
        4,
        "service checks run over TCP only",
    ),
    (  # the lists under from: are read by the same code as the host's own: the same refusals
        "service-on-udp-from-vantage",
        'hosts:\n  w:\n    from:\n      office:\n        open:\n          - {port: "6379/udp", service: redis}\n',
        6,
        "service checks run over TCP only",
    ),
    (
        "twice-from-vantage",
        "hosts:\n  w:\n    from:\n      office:\n        open: [22]\n        closed: [22]\n",
        6,
        "tcp/22 is declared twice from office (also line 5)",
    ),
    ("octal-address", "hosts:\n  web:\n    address: 010.0.0.1\n    open: [1]\n", 3, "read it as 8.0.0.1"),
    ("octal-name", "hosts:\n  0177.0.0.1:\n    open: [1]\n", 2, "read it as 127.0.0.1"),
    ("hex-address", "hosts:\n  web:\n    address: 0x7f.1\n    open: [1]\n", 3, "not a plain IPv4 address"),
    ("integer-address", 'hosts:\n  web:\n    address: "2130706433"\n    open: [1]\n', 3, "as 127.0.0.1"),
    ("short-address", 'hosts:\n  web:\n    address: "127.1"\n    open: [1]\n', 3, "as 127.0.0.1"),
    ("octal-host-name", "hosts:\n  0123:\n    open: [1]\n", 2, "octal number 83"),
    ("null-port", "hosts:\n  web:\n    closed: [~]\n", 3, "must be a number or text"),
    ("nested-list-port", "hosts:\n  web:\n    closed: [[22]]\n", 3, "found a list"),
    ("sexagesimal", "hosts:\n  web:\n    closed:\n      - 22:30\n", 4, "read by YAML as the number 1350"),
    ("colon-pair", "hosts:\n  web:\n    closed:\n      - 22:80\n", 4, "not a port number"),
    ("hex-port", "hosts:\n  web:\n    closed: [0x50]\n", 3, "read by YAML as the number 80"),
    ("scalar-list", "hosts:\n  web:\n    open: 22\n", 3, "must be a list"),
    (
        "silence-flag-on-open",
        "hosts:\n  w:\n    open:\n      - {port: 53/udp, silence_counts_as_closed: true}\n",
        4,
        "goes with closed: entries",
    ),
    (
        "silence-flag-value",
        "hosts:\n  w:\n    silence_counts_as_closed: sometimes\n    closed: [1]\n",
        3,
        "must be true or false",
    ),
    ("bad-proto", 'hosts:\n  web:\n    open: ["53/sctp"]\n', 3, "unknown protocol"),
    ("timeout-zero", "defaults:\n  timeout: 0\nhosts:\n  web:\n    open: [1]\n", 2, "more than 0"),
    ("timeout-text", "hosts:\n  web:\n    timeout: soon\n    open: [1]\n", 3, "a number of seconds"),
    ("retries-negative", "hosts:\n  web:\n    retries: -1\n    open: [1]\n", 3, "at least 0"),
    ("retries-float", "hosts:\n  web:\n    retries: 1.5\n    open: [1]\n", 3, "a whole number"),
    ("address-number", "hosts:\n  web:\n    address: 12\n    open: [1]\n", 3, "must be a hostname"),
    ("address-block-too-big", "hosts:\n  web:\n    address: 127.0.0.0/8\n    open: [1]\n", 3, "allow-large"),
    ("name-with-colons", 'hosts:\n  "a::b":\n    open: [1]\n', 2, "cannot be used in test ids"),
    ("name-with-bracket", 'hosts:\n  "a[1]":\n    open: [1]\n', 2, "cannot be used in test ids"),
    ("non-utf8", b"hosts:\n  web:\n    open: [\xff]\n", 3, "not UTF-8"),
    ("key-not-text", "hosts:\n  22:\n    open: [1]\n", 2, "must be text"),
    (
        "service-on-closed",
        "hosts:\n  w:\n    closed:\n      - {port: 22, service: ssh}\n",
        4,
        "only open: entries",
    ),
    ("service-typo", "hosts:\n  w:\n    open:\n      - {port: 22, service: shh}\n", 4, "did you mean 'ssh'?"),
    ("service-missing", "hosts:\n  w:\n    open:\n      - {port: 22}\n", 4, "has no 'service:'"),
    ("port-missing", "hosts:\n  w:\n    open:\n      - {service: ssh}\n", 4, "has no 'port:'"),
    (
        "entry-key-typo",
        "hosts:\n  w:\n    open:\n      - {port: 22, servce: ssh}\n",
        4,
        "did you mean 'service'?",
    ),
    (
        "tls-on-ssh",
        "hosts:\n  w:\n    open:\n      - {port: 22, service: ssh, tls: {}}\n",
        4,
        "need service https or tls",
    ),
    (
        "auth-on-http",
        "hosts:\n  w:\n    open:\n      - {port: 80, service: http, auth: none}\n",
        4,
        "cannot be checked for http",
    ),
    (
        "auth-value",
        "hosts:\n  w:\n    open:\n      - {port: 6379, service: redis, auth: maybe}\n",
        4,
        "'required' or 'none'",
    ),
    (
        "tls-version",
        "hosts:\n  w:\n    open:\n      - port: 443\n        service: https\n        tls: {min_version: SSLv3}\n",
        6,
        "not one of TLSv1",
    ),
    (
        "tls-days",
        "hosts:\n  w:\n    open:\n      - port: 443\n        service: tls\n        tls:\n          expires_in_days: -1\n",
        7,
        "at least 0",
    ),
    (
        "tls-verify",
        "hosts:\n  w:\n    open:\n      - {port: 443, service: tls, tls: {verify: maybe}}\n",
        4,
        "true or false",
    ),
    (
        "tls-key-typo",
        "hosts:\n  w:\n    open:\n      - {port: 443, service: tls, tls: {min_versoin: TLSv1.2}}\n",
        4,
        "did you mean 'min_version'?",
    ),
    ("tagged-object", "hosts: !!python/object:os.system {}\n", 1, "tag 'tag:yaml.org,2002:python/object"),
    ("tagged-scalar", "hosts:\n  web:\n    open: [!!binary aGk=]\n", 3, "is not allowed"),
]


@pytest.mark.parametrize(("text", "line", "words"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_broken_inventory_names_file_line_and_fix(
    tmp_path: Path, text: str | bytes, line: int, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    error = caught.value
    assert error.path == path
    assert error.line == line, str(error)
    assert words in error.message
    assert str(error).startswith(f"{path}:{line}: " if line else f"{path}: ")


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 25


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such file"):
        load_inventory(tmp_path / "nope.yml")


def test_quoted_leading_zero_ports_are_decimal(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, 'hosts:\n  web:\n    closed: ["0443", "010/udp", 22]\n'))
    assert [(e.proto.value, e.port) for e in inventory.hosts[0].expectations] == [
        ("tcp", 443),
        ("udp", 10),
        ("tcp", 22),
    ]


def test_snapshot_text_loads_back_for_udp_duplicates_and_tiny_timeouts(tmp_path: Path) -> None:
    # ::1 and [::1] are one name once cleaned; the smallest timeout the loader takes is written back
    # as a plain decimal (test_hostile checks the exponent form never appears).
    results = [
        ProbeResult(host, "::1", proto, port, state, "x")
        for host in ("::1", "[::1]")
        for proto, port, state in (
            (Protocol.TCP, 22, PortState.OPEN),
            (Protocol.UDP, 53, PortState.OPEN),
            (Protocol.UDP, 54, PortState.OPEN_FILTERED),
            (Protocol.UDP, 55, PortState.CLOSED),
        )
    ]
    report = ScanReport(
        [Resolution("::1", ("::1",)), Resolution("[::1]", ("::1",))],
        results,
        ScanSettings(timeout=0.001, retries=0),
        "2026-11-27T00:00:00+00:00",
        0.1,
    )
    ports = [(Protocol.TCP, 22), (Protocol.UDP, 53), (Protocol.UDP, 54), (Protocol.UDP, 55)]
    text = snapshot_inventory(report, {}, ports, ["portcheck", "snapshot"])
    inventory = load_inventory(write(tmp_path, text))
    assert len(inventory.hosts) == 4 and len({host.name for host in inventory.hosts}) == 4
    assert inventory.hosts[0].timeout == 0.001
    udp = inventory.hosts[1]
    assert udp.range_rule is not None and udp.range_rule.proto is Protocol.UDP
    assert [(e.proto, e.port, e.expect.value) for e in udp.expectations] == [
        (Protocol.UDP, 53, "open"),
        (Protocol.UDP, 54, "filtered"),
    ]
    assert udp.range_rule.ports == (55,)


def test_rates_come_from_defaults_and_hosts(tmp_path: Path) -> None:
    text = "defaults:\n  max_rate: 500\nhosts:\n  a:\n    closed: [22]\n  b:\n    min_rate: 50\n    max_rate: 90.5\n    closed: [22]\n"
    a, b = load_inventory(write(tmp_path, text)).hosts
    assert (a.max_rate, a.min_rate) == (500, None)
    assert (b.max_rate, b.min_rate) == (90.5, 50)


@pytest.mark.parametrize("address", ["999.1.1.1", "10.0.0.256", "bad_name!", "-web.example", "a..b"])
def test_an_address_that_is_neither_ip_nor_host_name_is_an_error_with_its_line(
    tmp_path: Path, address: str
) -> None:
    text = f"hosts:\n  web:\n    open: [22]\n    address: {address!r}\n"
    with pytest.raises(InventoryError) as raised:
        load_inventory(write(tmp_path, text))
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'inventory.yml'}:4: {address!r}")
    assert "valid" in message or "plain IPv4" in message


@pytest.mark.parametrize("address", ["::1", "[::1]", "127.0.0.0/30", "localhost", "my_host.example.", "db-1"])
def test_addresses_and_host_names_spelled_right_are_accepted(tmp_path: Path, address: str) -> None:
    text = f"hosts:\n  web:\n    open: [22]\n    address: {address!r}\n"
    assert load_inventory(write(tmp_path, text)).hosts[0].address == address


MANY_IN_ONE_HOST = (
    "defaults:\n"
    "  timeout: soon\n"  # 2
    "hosts:\n"
    "  web:\n"
    "    address: 10.0.0.256\n"  # 5
    '    open: [22, 70000, "80-70"]\n'  # 6: two bad specs in one list
    "    closd: [23]\n"  # 7
    "    retries: -1\n"  # 8
    "    closed:\n"
    "      - {port: 24, servce: ssh}\n"  # 10
    "      - 0443\n"  # 11
    "      - 25\n"
    "    from:\n"
    "      'bad vantage':\n"  # 14
    "        open: [99999]\n"  # 15
    "  ok:\n"
    "    address: 127.0.0.1\n"
    "    open: [22]\n"
)
"""One host with a problem on nearly every line: each must be reported, with its line."""


def test_every_problem_of_one_host_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, MANY_IN_ONE_HOST)
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    problems = raised.value.problems
    expected = [
        (2, "timeout in defaults must be a number of seconds, not 'soon'"),
        (5, "'10.0.0.256' is not a plain IPv4 address"),
        (6, "port 70000 in '70000' is out of range"),
        (6, "'80-70'"),
        (7, "unknown key 'closd' in host 'web': did you mean 'closed'?"),
        (8, "retries in host 'web' must be at least 0, not -1"),
        (10, "unknown key 'servce' in an entry of 'web': did you mean 'service'?"),
        (11, "'0443' starts with a zero"),
        (14, "vantage name 'bad vantage'"),
        (15, "port 99999 in '99999' is out of range"),
    ]
    assert [(p.line, p.path) for p in problems] == [(line, path) for line, _ in expected], str(raised.value)
    for problem, (_, words) in zip(problems, expected, strict=True):
        assert words in problem.message, str(problem)
    # One line each, file:line: fix; the error itself points at the first.
    lines = str(raised.value).splitlines()
    assert lines == [str(problem) for problem in problems]
    assert all(line.startswith(f"{path}:") for line in lines)
    assert (raised.value.line, raised.value.path) == (2, path)


@pytest.mark.parametrize(
    ("text", "reported"),
    [
        # The consequence of a skipped key is not a second problem: the entry has no service: because
        # 'servce' was not read, and the host declares ports, in the list whose key is misspelt.
        ("hosts:\n  web:\n    closed:\n      - {port: 24, servce: ssh}\n", [4]),
        ("hosts:\n  web:\n    oppen: [22]\n", [3]),
        ("hosts:\n  web:\n    open: [0]\n", [3]),
        # A name refused for test ids is not refused again as the address it stands for.
        ('hosts:\n  "a[1]":\n    open: [1]\n', [2]),
        # Two problems on one line keep the order they were found in.
        ('hosts:\n  web:\n    open: ["x", 0]\n', [3, 3]),
        # A problem in defaults and a missing hosts: section are two problems, not cause and effect...
        ("defaults:\n  timeout: -1\n", [1, 2]),
        # ...but a misspelt 'hosts:' is one.
        ("host:\n  web:\n    open: [22]\n", [1]),
    ],
)
def test_a_problem_is_reported_once_not_with_its_consequences(
    tmp_path: Path, text: str, reported: list[int]
) -> None:
    with pytest.raises(InventoryError) as raised:
        load_inventory(write(tmp_path, text))
    assert [problem.line for problem in raised.value.problems] == reported, str(raised.value)


def test_every_broken_host_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    text = (
        "hosts:\n"
        "  a:\n    address: 'bad_name!'\n    open: [22]\n"
        "  b:\n    address: 127.0.0.1\n    open: [70000]\n"
        "  c:\n    address: 127.0.0.1\n    open: [22]\n"
        "  d:\n    address: 10.0.0.256\n    closed: [22]\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    lines = str(raised.value).splitlines()
    assert [problem.line for problem in raised.value.problems] == [3, 7, 12]
    assert len(lines) == 3
    assert lines[0].startswith(f"{path}:3: 'bad_name!'")
    assert lines[1].startswith(f"{path}:7: ") and "70000" in lines[1]
    assert lines[2].startswith(f"{path}:12: '10.0.0.256'")


def snapshot_of(
    tmp_path: Path, report: ScanReport, services: dict[ResultKey, ServiceInfo] | None = None
) -> str:
    """The snapshot of a report built as a value, checked to load back as an inventory."""
    ports = sorted({(r.proto, r.port) for r in report.results})
    text = snapshot_inventory(report, services or {}, ports, ["portcheck", "snapshot"])
    load_inventory(write(tmp_path, text))
    return text


def found(host: str, address: str, *states: tuple[int, PortState]) -> list[ProbeResult]:
    return [ProbeResult(host, address, Protocol.TCP, port, state, "x") for port, state in states]


def scan_report(resolutions: list[Resolution], results: list[ProbeResult]) -> ScanReport:
    return ScanReport(resolutions, results, ScanSettings(), "2026-11-27T00:00:00+00:00", 0.1)


def test_snapshot_writes_a_name_as_given_when_its_addresses_agree(tmp_path: Path) -> None:
    report = scan_report(
        [Resolution("db.example", ("10.0.0.1", "fd00::1"))],
        found("db.example", "10.0.0.1", (22, PortState.OPEN), (23, PortState.CLOSED))
        + found("db.example", "fd00::1", (22, PortState.OPEN), (23, PortState.FILTERED)),
    )
    [host] = load_inventory(write(tmp_path, snapshot_of(tmp_path, report))).hosts
    assert (host.name, host.address) == ("db.example", "db.example")
    assert [(e.port, e.expect.value) for e in host.expectations] == [(22, "open")]
    assert host.range_rule is not None and host.range_rule.ports == (23,)


def test_snapshot_of_a_name_whose_addresses_differ_holds_each_and_what_they_share(tmp_path: Path) -> None:
    report = scan_report(
        [Resolution("db.example", ("10.0.0.1", "fd00::1"))],
        found(
            "db.example", "10.0.0.1", (22, PortState.OPEN), (5432, PortState.OPEN), (6379, PortState.CLOSED)
        )
        + found(
            "db.example", "fd00::1", (22, PortState.OPEN), (5432, PortState.CLOSED), (6379, PortState.CLOSED)
        ),
    )
    text = snapshot_of(tmp_path, report)
    assert "# db.example: its addresses differ in what is open on 5432/tcp" in text
    target, v4, v6 = load_inventory(write(tmp_path, text)).hosts
    # The name: what every address showed (22 open, 6379 shut), without the port they differ on.
    assert (target.name, target.address) == ("db.example", "db.example")
    assert [(e.port, e.expect.value) for e in target.expectations] == [(22, "open")]
    assert target.range_rule is not None and target.range_rule.ports == (6379,)
    # Each known address: all it showed, over the whole range.
    assert (v4.name, v4.address) == ("db.example-10.0.0.1", "10.0.0.1")
    assert [(e.port, e.expect.value) for e in v4.expectations] == [(22, "open"), (5432, "open")]
    assert v4.range_rule is not None and v4.range_rule.ports == (6379,)
    assert (v6.name, v6.address) == ("db.example-fd00-1", "fd00::1")
    assert [(e.port, e.expect.value) for e in v6.expectations] == [(22, "open")]
    assert v6.range_rule is not None and v6.range_rule.ports == (5432, 6379)


def test_snapshot_counts_a_service_that_differs_as_a_difference(tmp_path: Path) -> None:
    report = scan_report(
        [Resolution("web.example", ("10.0.0.1", "10.0.0.2"))],
        found("web.example", "10.0.0.1", (22, PortState.OPEN), (6379, PortState.OPEN))
        + found("web.example", "10.0.0.2", (22, PortState.OPEN), (6379, PortState.OPEN)),
    )
    services = {
        ("10.0.0.1", Protocol.TCP, 22): ServiceInfo("ssh", "SSH-2.0-OpenSSH_9.2p1", "OpenSSH", "9.2p1"),
        ("10.0.0.2", Protocol.TCP, 22): ServiceInfo("ssh", "SSH-2.0-OpenSSH_9.6p1", "OpenSSH", "9.6p1"),
        ("10.0.0.1", Protocol.TCP, 6379): ServiceInfo("redis", "", auth="required"),
        ("10.0.0.2", Protocol.TCP, 6379): ServiceInfo("redis", "", auth="none"),
    }
    text = snapshot_of(tmp_path, report, services)
    target, first, second = load_inventory(write(tmp_path, text)).hosts
    [ssh] = target.expectations  # the same service on both: declared on the name
    assert ssh.port == 22 and ssh.service is not None and ssh.service.service == "ssh"
    assert target.range_rule is not None and target.range_rule.ports == ()
    assert "{port: 6379, service: redis, auth: required}" in text  # the password 10.0.0.1 asked for
    assert [e.service.auth if e.service else None for e in first.expectations if e.port == 6379] == [
        "required"
    ]
    assert [e.service.auth if e.service else None for e in second.expectations if e.port == 6379] == [None]


def test_snapshot_of_a_block_finds_ports_a_plugin_report_filed_under_another_host(tmp_path: Path) -> None:
    # A plugin report probes each (address, port) once and files it under the first host asking for it.
    report = scan_report(
        [Resolution("10.0.0.1", ("10.0.0.1",)), Resolution("10.0.0.0/31", ("10.0.0.0", "10.0.0.1"))],
        found("10.0.0.1", "10.0.0.1", (22, PortState.OPEN))
        + found("10.0.0.0/31", "10.0.0.0", (22, PortState.OPEN)),
    )
    single, block = load_inventory(write(tmp_path, snapshot_of(tmp_path, report))).hosts
    assert (single.address, [e.port for e in single.expectations]) == ("10.0.0.1", [22])
    assert (block.address, [e.port for e in block.expectations]) == ("10.0.0.0/31", [22])


def test_snapshot_of_a_target_no_inventory_takes_writes_its_addresses(tmp_path: Path) -> None:
    # A name read from someone's nmap XML, neutralised but not a host name; and a block over the limit.
    addresses = tuple(
        f"10.{second}.{third}.{fourth}" for second in (0, 1) for third in (0, 255) for fourth in (0, 9)
    )
    report = scan_report(
        [Resolution("bad name!", ("10.9.9.9",)), Resolution("10.0.0.0/15", addresses)],
        found("bad name!", "10.9.9.9", (22, PortState.OPEN))
        + found("10.0.0.0/15", "10.1.255.9", (22, PortState.OPEN), (23, PortState.CLOSED)),
    )
    text = snapshot_of(tmp_path, report)
    assert "# bad name! cannot be an inventory address" in text
    assert "# 10.0.0.0/15: more addresses than one inventory host takes, one host per /16 block" in text
    hosts = load_inventory(write(tmp_path, text)).hosts
    assert [host.address for host in hosts[:1]] == ["10.9.9.9"]
    # One /16 agrees (nothing open); in the other, 10.1.255.9 differs: the block and each address.
    assert [host.address for host in hosts[1:3]] == ["10.0.0.0/16", "10.1.0.0/16"]
    assert hosts[2].range_rule is not None and hosts[2].range_rule.ports == (23,)
    assert [host.address for host in hosts[3:]] == [a for a in addresses if a.startswith("10.1.")]
