from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_portcheck import ports
from pytest_portcheck.ports import (
    MAX_PORT,
    PortSpecError,
    Protocol,
    format_ports,
    parse_port_spec,
    service_name,
)

TCP = Protocol.TCP


def numbers(spec: str | int) -> list[int]:
    return [port for _proto, port in parse_port_spec(spec)]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("22,80,443", [22, 80, 443]),
        ("1-5", [1, 2, 3, 4, 5]),
        ("1-3,8080", [1, 2, 3, 8080]),
        (" 80 , 22 ", [22, 80]),
        ("80,80,79-81", [79, 80, 81]),
        ("443/tcp", [443]),
        ("443/TCP", [443]),
        (22, [22]),
        ("65530-", [65530, 65531, 65532, 65533, 65534, 65535]),
        ("-3", [1, 2, 3]),
    ],
)
def test_parses_lists_and_ranges(spec: str | int, expected: list[int]) -> None:
    assert numbers(spec) == expected


@pytest.mark.parametrize("spec", ["-", "all", "ALL", "-/tcp", "1-65535"])
def test_everything(spec: str) -> None:
    assert numbers(spec) == list(range(1, 65536))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("0", "port 0 in '0' is out of range"),
        ("65536", "port 65536"),
        ("1-70000", "port 70000 in '1-70000'"),
        ("100-10", "reversed: write it as '10-100'"),
        ("22,,80", "empty item"),
        ("22,", "empty item"),
        ("http", "'http' in 'http' is not a port number"),
        ("22/sctp", "unknown protocol 'sctp'"),
        ("1-2-3", "more than one '-'"),
        ("²", "not a port number"),
        ("-5-", "more than one '-'"),
        ("1.5", "not a port number"),
    ],
)
def test_rejects_bad_specs_naming_the_piece(spec: str, message: str) -> None:
    with pytest.raises(PortSpecError, match=None) as caught:
        parse_port_spec(spec)
    assert message in str(caught.value)


def test_rejects_non_text() -> None:
    with pytest.raises(PortSpecError, match="text or a number"):
        parse_port_spec(True)
    with pytest.raises(PortSpecError, match="text or a number"):
        parse_port_spec([22])  # type: ignore[arg-type]


def test_udp_ports() -> None:
    assert parse_port_spec("53/udp,53,500-501/UDP") == [
        (TCP, 53),
        (Protocol.UDP, 53),
        (Protocol.UDP, 500),
        (Protocol.UDP, 501),
    ]
    with pytest.raises(PortSpecError, match="udp ports are not supported here"):
        parse_port_spec("53/udp", protocols={TCP})


@given(st.sets(st.integers(1, MAX_PORT), min_size=1, max_size=200))
def test_format_then_parse_round_trips(chosen: set[int]) -> None:
    assert numbers(format_ports(chosen)) == sorted(chosen)


@given(st.lists(st.tuples(st.integers(1, MAX_PORT), st.integers(1, MAX_PORT)), min_size=1, max_size=20))
def test_ranges_are_merged_sorted_and_unique(pairs: list[tuple[int, int]]) -> None:
    spec = ",".join(f"{min(a, b)}-{max(a, b)}" for a, b in pairs)
    expected = sorted({port for a, b in pairs for port in range(min(a, b), max(a, b) + 1)})
    assert numbers(spec) == expected


@given(st.text(max_size=30))
def test_any_text_parses_or_raises_port_spec_error(text: str) -> None:
    try:
        result = parse_port_spec(text)
    except PortSpecError as exc:
        assert str(exc)
    else:
        assert result and all(1 <= port <= MAX_PORT for _proto, port in result)


def test_service_names_from_the_system_table() -> None:
    assert service_name(TCP, 22) == "ssh"
    assert service_name(TCP, 64999) == "unknown"


def test_service_names_without_etc_services(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Slim containers ship no /etc/services: the built-in table still names well-known ports.
    monkeypatch.setattr(ports, "_SERVICES_FILE", tmp_path / "services")
    ports._service_table.cache_clear()
    try:
        assert service_name(TCP, 5432) == "postgresql"
        assert service_name(TCP, 6379) == "redis"
        assert service_name(TCP, 443) == "https"
    finally:
        ports._service_table.cache_clear()
