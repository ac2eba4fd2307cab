"""UDP scanning against real UDP servers on loopback, and over a veth link between two namespaces
the tests create (with the target's ICMP rate limit at its default, and at 0)."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from conftest import (
    REPO,
    ListenerFactory,
    Namespace,
    ipv6_available,
    joined_namespaces,
    portcheck,
    unused_port,
)

from pytest_portcheck.engine import PortState, ScanSettings, expand_targets, resolve_hosts, scan
from pytest_portcheck.engine.payloads import MEMCACHED_STATS, NTP_CLIENT_REQUEST, udp_payload
from pytest_portcheck.ports import parse_port_spec

pytest_plugins = ["pytester"]

Responder = Callable[[bytes], bytes | None]


def dns_reply(query: bytes) -> bytes | None:
    """Answers well-formed DNS queries only (so a reply proves the probe sent one)."""
    if len(query) < 17:
        return None
    ident, flags, questions = struct.unpack("!HHH", query[:6])
    if questions != 1 or flags & 0x8000:
        return None
    return struct.pack("!HHHHHH", ident, 0x8180, 1, 0, 0, 0) + query[12:]


def ntp_reply(query: bytes) -> bytes | None:
    return b"\x1c" + b"\x00" * 47 if len(query) == 48 and query[0] & 0x07 == 3 else None


def snmp_reply(query: bytes) -> bytes | None:
    return b"\x30\x03\x02\x01\x01" if query[:1] == b"\x30" and b"public" in query else None


def memcached_reply(query: bytes) -> bytes | None:
    return query[:8] + b"STAT pid 1\r\nEND\r\n" if query[8:] == b"stats\r\n" else None


def echo(query: bytes) -> bytes | None:
    return query or b"hello"


def never(query: bytes) -> bytes | None:
    return None


@pytest.fixture
def udp_server() -> Iterator[Callable[..., int]]:
    """``udp_server(responder, port=0, host="127.0.0.1")``: a UDP socket answering with ``responder``."""
    sockets: list[socket.socket] = []
    stop = threading.Event()

    def start(responder: Responder, port: int = 0, host: str = "127.0.0.1") -> int:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, port))
        sock.settimeout(0.1)
        sockets.append(sock)

        def serve() -> None:
            while not stop.is_set():
                try:
                    data, peer = sock.recvfrom(4096)
                except OSError:
                    continue
                answer = responder(data)
                if answer is not None:
                    sock.sendto(answer, peer)

        threading.Thread(target=serve, daemon=True).start()
        return int(sock.getsockname()[1])

    yield start
    stop.set()
    for sock in sockets:
        sock.close()


def udp_scan(host: str, spec: str, **settings: float) -> dict[int, PortState]:
    targets, _ = expand_targets(resolve_hosts([host]), parse_port_spec(spec))
    return {r.port: r.state for r in scan(targets, ScanSettings(timeout=0.5, **settings))}  # type: ignore[arg-type]


def foreign_udp_ports() -> set[int]:
    """UDP ports something else on this machine has bound (not ours to judge)."""
    ports = set()
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        ports |= {int(line.split()[1].rsplit(":", 1)[1], 16) for line in lines}
    return ports


def test_payloads_are_real_requests(udp_server: Callable[..., int]) -> None:
    # Each responder answers only a well-formed request of its protocol.
    assert dns_reply(udp_payload(53)) is not None
    assert ntp_reply(udp_payload(123)) is not None and udp_payload(123) == NTP_CLIENT_REQUEST
    assert snmp_reply(udp_payload(161)) is not None
    assert memcached_reply(udp_payload(11211)) is not None and udp_payload(11211) == MEMCACHED_STATS
    assert udp_payload(40000) == b""
    port = udp_server(dns_reply)
    # A DNS server on an unusual port gets an empty datagram: no reply, honestly open|filtered.
    assert udp_scan("127.0.0.1", f"{port}/udp")[port] is PortState.OPEN_FILTERED


def test_loopback_1_1024_is_exact_ten_times(udp_server: Callable[..., int]) -> None:
    wanted = {53: dns_reply, 123: ntp_reply, 161: snmp_reply, 777: echo, 1000: echo}
    ours = {}
    for port, responder in wanted.items():
        try:
            ours[port] = udp_server(responder, port=port)
        except OSError:
            continue  # something else has it: left out below
    foreign = foreign_udp_ports() - set(ours)
    for run in range(10):
        states = udp_scan("127.0.0.1", "1-1024/udp")
        for port in range(1, 1025):
            if port in foreign:
                continue
            expected = PortState.OPEN if port in ours else PortState.CLOSED
            assert states[port] is expected, f"run {run}: udp/{port} is {states[port]}"


def test_silent_bound_port_is_open_filtered(udp_server: Callable[..., int]) -> None:
    silent = udp_server(never)
    closed = unused_port()
    states = udp_scan("127.0.0.1", f"{silent}/udp,{closed}/udp", retries=1)
    assert states == {silent: PortState.OPEN_FILTERED, closed: PortState.CLOSED}


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback on this machine")
def test_ipv6(udp_server: Callable[..., int]) -> None:
    port = udp_server(echo, host="::1")
    closed = unused_port("::1")
    assert udp_scan("::1", f"{port}/udp,{closed}/udp") == {port: PortState.OPEN, closed: PortState.CLOSED}


def test_command_udp_flag_and_json(udp_server: Callable[..., int]) -> None:
    port = udp_server(echo)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest_portcheck", "scan", "127.0.0.1", "--udp", "-p", f"{port},1", "--json", "-"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    found = {(r["proto"], r["port"]): (r["state"], r["reason"]) for r in report["results"]}
    assert found[("udp", port)] == ("open", "udp-response")
    assert found[("udp", 1)] == ("closed", "port-unreach")
    assert "UDP scan of 1 target(s)" in completed.stderr


def test_inventory_udp_rules(pytester: pytest.Pytester, udp_server: Callable[..., int]) -> None:
    dns = udp_server(echo)
    silent = udp_server(never)
    pytester.makefile(
        ".yml",
        inventory=f"""
        defaults: {{timeout: 0.3, retries: 0}}
        hosts:
          box:
            address: 127.0.0.1
            open: ["{dns}/udp"]
            closed: ["{silent}/udp"]
          relaxed:
            address: 127.0.0.1
            closed:
              - {{port: "{silent}/udp", silence_counts_as_closed: true}}
            filtered: ["{unused_port()}/udp"]
          quiet:
            address: 127.0.0.1
            filtered: ["{silent}/udp"]
        """,
    )
    result = pytester.runpytest("--portcheck", "inventory.yml", "-v")
    result.stdout.fnmatch_lines_random(
        [
            f"inventory.yml::box::udp/{dns}::open PASSED*",
            f"inventory.yml::box::udp/{silent}::closed FAILED*",
            f"inventory.yml::relaxed::udp/{silent}::closed PASSED*",
            "inventory.yml::relaxed::udp/*::filtered FAILED*",
            f"inventory.yml::quiet::udp/{silent}::filtered PASSED*",
            f"box (127.0.0.1) udp/{silent}: expected closed, found OPEN|FILTERED — no-response after 1 attempt(s) "
            "(0.3 s timeout) — no reply and no ICMP error: a silent service or a drop, silence proves nothing; "
            "declare it filtered:, or set silence_counts_as_closed: true to accept it",
        ]
    )


# --- over a veth link between two namespaces -----------------------------------------------------

RESPONDER = textwrap.dedent(
    """
    import socket, sys, threading, time
    def serve(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        while True:
            data, peer = s.recvfrom(4096)
            s.sendto(data or b"hi", peer)
    for port in map(int, sys.argv[1:]):
        threading.Thread(target=serve, args=(port,), daemon=True).start()
    print("ready", flush=True)
    time.sleep(600)
    """
)


@dataclass
class Link:
    scanner: Namespace
    target: Namespace
    address: str


@pytest.fixture
def link() -> Iterator[Link]:
    with joined_namespaces("10.77.0") as (scanner, target):
        yield Link(scanner, target, "10.77.0.2")


def serve_udp(target: Namespace, *ports: int) -> subprocess.Popen[str]:
    server = target.popen(sys.executable, "-c", RESPONDER, *map(str, ports))
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server


def test_rate_limited_target_is_paced_and_exact(link: Link) -> None:
    # Linux answers a burst of ~6 closed ports, then about one per second: without pacing, most of
    # these 30 closed ports would come back open|filtered.
    assert link.target.run("sysctl", "-n", "net.ipv4.icmp_ratelimit").stdout.strip() == "1000"
    completed = link.scanner.portcheck(
        "scan", link.address, "--udp", "-p", "20000-20029", "-t", "0.5", "--json", "-", timeout=180
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["summary"]["closed"] == 30, report["summary"]
    assert "rate-limit ICMP port-unreachable replies" in completed.stderr
    assert "UDP retries were paced" in completed.stderr


def test_without_the_limit_1_1024_is_exact(link: Link) -> None:
    # Both limits off: the per-peer one (icmp_ratelimit) and the global budget (icmp_ratemask).
    link.target.run("sysctl", "-w", "net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_ratemask=0")
    server = serve_udp(link.target, 53, 500, 1000)
    try:
        completed = link.scanner.portcheck(
            "scan", link.address, "--udp", "-p", "1-1024", "-t", "0.5", "--json", "-"
        )
    finally:
        server.kill()
        server.wait()
    assert completed.returncode == 0, completed.stderr
    states = {r["port"]: r["state"] for r in json.loads(completed.stdout)["results"]}
    assert {p for p, s in states.items() if s == "open"} == {53, 500, 1000}
    assert {p for p, s in states.items() if s != "open"} == set(range(1, 1025)) - {53, 500, 1000}
    assert set(states.values()) == {"open", "closed"}
    assert "rate-limit" not in completed.stderr


def test_firewall_drop_and_reject_for_udp(link: Link) -> None:
    link.target.run("iptables", "-A", "INPUT", "-p", "udp", "--dport", "3000", "-j", "DROP")
    link.target.run(
        "iptables", "-A", "INPUT", "-p", "udp", "--dport", "3001", "-j", "REJECT",
        "--reject-with", "icmp-host-prohibited",
    )  # fmt: skip
    completed = link.scanner.portcheck(
        "scan", link.address, "--udp", "-p", "3000-3002", "-t", "0.4", "--retries", "1", "--json", "-"
    )
    assert completed.returncode == 0, completed.stderr
    found = {r["port"]: (r["state"], r["reason"]) for r in json.loads(completed.stdout)["results"]}
    assert found[3000] == ("open|filtered", "no-response")
    assert found[3001] == ("filtered", "host-unreach")
    assert found[3002] == ("closed", "port-unreach")


def test_only_open_over_udp_treats_silence_as_closed_does(
    pytester: pytest.Pytester, udp_server: Callable[..., int]
) -> None:
    # A bound UDP socket that never replies: closed: fails on it, so only_open over it must fail too,
    # unless the host says silence counts as closed.
    silent = udp_server(never)
    refused = unused_port()
    spec = ",".join(str(port) for port in sorted({silent, refused}))
    udp_range = ",".join(f"{port}/udp" for port in sorted({silent, refused}))
    pytester.makefile(
        ".yml",
        inventory=f"""
        defaults: {{timeout: 0.3, retries: 0}}
        hosts:
          strict:
            address: 127.0.0.1
            only_open: []
            range: "{udp_range}"
          relaxed:
            address: 127.0.0.1
            only_open: []
            range: "{udp_range}"
            silence_counts_as_closed: true
        """,
    )
    result = pytester.runpytest("--portcheck", "inventory.yml", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines_random(
        [
            f"inventory.yml::strict::udp/{spec}::only_open FAILED*",
            f"inventory.yml::relaxed::udp/{spec}::only_open PASSED*",
            f"strict: 1 port(s) in udp/{spec} gave no reply and no ICMP error (open|filtered): {silent} — *",
        ]
    )


def test_snapshot_of_a_udp_scan_declares_udp(
    pytester: pytest.Pytester, udp_server: Callable[..., int]
) -> None:
    answering, silent, refused = udp_server(echo), udp_server(never), unused_port()
    spec = ",".join(str(port) for port in sorted({answering, silent, refused}))
    done = portcheck(
        "snapshot", "127.0.0.1", "--udp", "-p", spec, "-t", "0.3", "--retries", "0", cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "/tcp" not in text
    assert f'range: "{",".join(f"{port}/udp" for port in sorted({answering, silent, refused}))}"' in text
    assert f'- "{answering}/udp"' in text and f'- "{silent}/udp"' in text.split("filtered:", 1)[1]


def test_snapshot_of_a_mixed_scan_round_trips(
    pytester: pytest.Pytester, udp_server: Callable[..., int], listen: ListenerFactory
) -> None:
    # TCP and UDP in one snapshot: pytest passes on it as it is, and one more UDP responder in the
    # range fails exactly one item.
    tcp_open, tcp_closed = listen().getsockname()[1], unused_port()
    answering, silent, newcomer = udp_server(echo), udp_server(never), unused_port()
    udp_ports = sorted({answering, silent, newcomer})
    spec = ",".join([str(tcp_open), str(tcp_closed), *(f"{port}/udp" for port in udp_ports)])
    snapshot = pytester.path / "inventory.yml"
    done = portcheck(
        "snapshot", "127.0.0.1", "-p", spec, "-t", "0.3", "--retries", "0", "-o", str(snapshot), cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    pytester.runpytest("--portcheck", "inventory.yml", "-v").assert_outcomes(passed=5)
    udp_server(echo, port=newcomer)
    result = pytester.runpytest("--portcheck", "inventory.yml", "-rf")
    result.assert_outcomes(passed=4, failed=1)
    label = ",".join(str(port) for port in udp_ports)
    result.stdout.fnmatch_lines([f"*127.0.0.1-udp: 1 unexpected open port(s) in udp/{label}: {newcomer} (*"])
