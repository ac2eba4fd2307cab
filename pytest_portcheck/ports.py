"""Port specifications and service names.

Holds the one parser every front end uses for port specs (``"22,80,1000-2000/tcp"``), its error type,
runs of consecutive ports (``PortRun``) and the spec a report's plan stores them in, and the
service-name lookup. Standard library only (not pathlib: every start of the command pays for
what this imports); nothing here touches the network.
Must not import anything of the package.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

MIN_PORT = 1
MAX_PORT = 65535


class Protocol(str, enum.Enum):
    TCP = "tcp"
    UDP = "udp"

    def __str__(self) -> str:
        return self.value


PortKey = tuple[Protocol, int]
"""A (protocol, port number) pair; sorting a list of them orders by protocol, then port."""

SUPPORTED_PROTOCOLS: frozenset[Protocol] = frozenset(Protocol)


class PortSpecError(ValueError):
    """A port spec that cannot be parsed; the message names the bad piece and the fix."""


_ITEM = re.compile(r"^(?P<range>[^/]*?)(?:/(?P<proto>[A-Za-z0-9]*))?$")


def parse_port_spec(spec: str | int, *, protocols: Iterable[Protocol] = SUPPORTED_PROTOCOLS) -> list[PortKey]:
    """Parse ``"22,80,1000-2000/tcp"`` into sorted, de-duplicated (protocol, port) pairs.

    Items are separated by commas. Each item is a port ``N``, a range ``N-M``, an open range ``N-`` or
    ``-M`` (to the end or from the start), or ``-``/``all`` for every port; each may end in ``/tcp`` or
    ``/udp`` (default ``tcp``).
    """
    allowed = frozenset(protocols)
    if isinstance(spec, bool) or not isinstance(spec, (str, int)):
        raise PortSpecError(f"a port spec must be text or a number, not {type(spec).__name__}")
    text = str(spec).strip()
    if not text:
        raise PortSpecError("the port spec is empty: give ports like '22,80,1000-2000'")
    spans = sorted(_parse_item(raw.strip(), text, allowed) for raw in text.split(","))
    # Merge the spans before expanding them: "1-65535" costs one range, not a set of 65,535 pairs.
    merged: list[tuple[Protocol, int, int]] = []
    for proto, low, high in spans:
        if merged and merged[-1][0] is proto and low <= merged[-1][2] + 1:
            merged[-1] = (proto, merged[-1][1], max(high, merged[-1][2]))
        else:
            merged.append((proto, low, high))
    return [(proto, port) for proto, low, high in merged for port in range(low, high + 1)]


def _parse_item(item: str, whole: str, allowed: frozenset[Protocol]) -> tuple[Protocol, int, int]:
    if not item:
        raise PortSpecError(f"empty item in port spec {whole!r}: remove the stray comma")
    match = _ITEM.match(item)
    if match is None:  # pragma: no cover - the pattern accepts any string
        raise PortSpecError(f"cannot read {item!r} in port spec {whole!r}")
    proto_text = (match.group("proto") or "tcp").lower()
    try:
        proto = Protocol(proto_text)
    except ValueError:
        raise PortSpecError(
            f"unknown protocol {match.group('proto')!r} in {item!r}: use '/tcp' or '/udp'"
        ) from None
    if proto not in allowed:
        names = ", ".join(sorted(p.value for p in allowed))
        raise PortSpecError(f"{item!r}: {proto.value} ports are not supported here (supported: {names})")
    low, high = _parse_range(match.group("range").strip(), item)
    return proto, low, high


def _parse_range(text: str, item: str) -> tuple[int, int]:
    if text.lower() in ("-", "all"):
        return MIN_PORT, MAX_PORT
    if "-" in text:
        left, _, right = text.partition("-")
        if "-" in right:
            raise PortSpecError(f"{item!r} has more than one '-': write a range as 'LOW-HIGH'")
        low = _parse_number(left, item) if left.strip() else MIN_PORT
        high = _parse_number(right, item) if right.strip() else MAX_PORT
        if low > high:
            raise PortSpecError(f"range {item!r} is reversed: write it as '{high}-{low}'")
        return low, high
    port = _parse_number(text, item)
    return port, port


def _parse_number(text: str, item: str) -> int:
    text = text.strip()
    if not text.isdigit() or not text.isascii():
        raise PortSpecError(
            f"{text!r} in {item!r} is not a port number: use numbers like '22' or ranges like '1-1024'"
        )
    port = int(text)
    if not MIN_PORT <= port <= MAX_PORT:
        raise PortSpecError(f"port {port} in {item!r} is out of range: ports are {MIN_PORT}-{MAX_PORT}")
    return port


def format_ports(ports: Iterable[int]) -> str:
    """Compress port numbers into the spec syntax: ``[1, 2, 3, 7]`` -> ``"1-3,7"``."""
    ordered = sorted(set(ports))
    pieces: list[str] = []
    index = 0
    while index < len(ordered):
        start = end = ordered[index]
        while index + 1 < len(ordered) and ordered[index + 1] == end + 1:
            index += 1
            end = ordered[index]
        pieces.append(str(start) if start == end else f"{start}-{end}")
        index += 1
    return ",".join(pieces)


PortRun = tuple[Protocol, int, int]
"""(protocol, first, last): a run of consecutive ports, both ends included."""


def merge_runs(runs: Iterable[PortRun]) -> tuple[PortRun, ...]:
    """Sorted runs with overlapping or touching runs of one protocol joined."""
    merged: list[PortRun] = []
    for proto, first, last in sorted(runs, key=lambda run: (run[0].value, run[1], run[2])):
        if merged and merged[-1][0] is proto and first <= merged[-1][2] + 1:
            merged[-1] = (proto, merged[-1][1], max(merged[-1][2], last))
        else:
            merged.append((proto, first, last))
    return tuple(merged)


def runs_of_ports(proto: Protocol, ports: Sequence[int]) -> list[PortRun]:
    """Runs of a sorted or unsorted port list (one pass when sorted, as ranges are)."""
    runs: list[PortRun] = []
    ordered = ports if all(a < b for a, b in itertools.pairwise(ports)) else sorted(set(ports))
    start = previous = -2
    for port in ordered:
        if port != previous + 1:
            if start >= 0:
                runs.append((proto, start, previous))
            start = port
        previous = port
    if start >= 0:
        runs.append((proto, start, previous))
    return runs


def format_runs(runs: Iterable[PortRun]) -> str:
    """Runs as the spec a report's plan stores: ``1-1024/tcp,53/udp`` (``runs_of_spec`` reads it)."""
    return ",".join(
        f"{first}{'' if first == last else f'-{last}'}/{proto.value}" for proto, first, last in runs
    )


_RUN = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?/(tcp|udp)")


def runs_of_spec(spec: str) -> list[PortRun]:
    """The runs of a host's spec as ``HostWork.spec`` writes it (``1-1024/tcp,53/udp``), read without
    expanding a run into its ports (a fleet's plan holds thousands of full ranges). ValueError naming
    the bad piece otherwise."""
    runs: list[PortRun] = []
    for piece in spec.split(",") if spec else ():
        match = _RUN.fullmatch(piece)
        first = int(match.group(1)) if match else 0
        last = int(match.group(2) or first) if match else 0
        if match is None or not 1 <= first <= last <= 65535:
            raise ValueError(f"{piece[:40]!r} is not a run of ports like '1-1024/tcp' or '53/udp'")
        runs.append((Protocol(match.group(3)), first, last))
    return runs


# Well-known ports, so that names work where /etc/services is missing (slim containers).
_BUILTIN_SERVICES: dict[PortKey, str] = {
    (Protocol.TCP, port): name
    for port, name in {
        7: "echo",
        20: "ftp-data",
        21: "ftp",
        22: "ssh",
        23: "telnet",
        25: "smtp",
        53: "domain",
        79: "finger",
        80: "http",
        88: "kerberos",
        110: "pop3",
        111: "sunrpc",
        113: "ident",
        119: "nntp",
        135: "msrpc",
        139: "netbios-ssn",
        143: "imap",
        179: "bgp",
        389: "ldap",
        443: "https",
        445: "microsoft-ds",
        465: "submissions",
        514: "shell",
        515: "printer",
        548: "afp",
        554: "rtsp",
        587: "submission",
        631: "ipp",
        636: "ldaps",
        873: "rsync",
        993: "imaps",
        995: "pop3s",
        1080: "socks",
        1194: "openvpn",
        1433: "ms-sql-s",
        1521: "oracle",
        1883: "mqtt",
        2049: "nfs",
        2181: "zookeeper",
        2375: "docker",
        2376: "docker-s",
        2379: "etcd-client",
        2380: "etcd-server",
        3000: "ppp",
        3128: "squid-http",
        3306: "mysql",
        3389: "ms-wbt-server",
        4369: "epmd",
        5000: "upnp",
        5432: "postgresql",
        5601: "kibana",
        5672: "amqp",
        5900: "vnc",
        5984: "couchdb",
        6379: "redis",
        6443: "kubernetes-api",
        6667: "irc",
        8000: "http-alt",
        8080: "http-alt",
        8081: "http-alt",
        8443: "https-alt",
        8888: "http-alt",
        9000: "cslistener",
        9042: "cassandra",
        9090: "prometheus",
        9092: "kafka",
        9100: "jetdirect",
        9200: "elasticsearch",
        9300: "elasticsearch-transport",
        10250: "kubelet",
        11211: "memcached",
        15672: "rabbitmq-mgmt",
        27017: "mongodb",
        50000: "ibm-db2",
    }.items()
}

_SERVICES_FILE = "/etc/services"
_PROTOCOL_NAMES = {proto.value: proto for proto in Protocol}


@lru_cache(maxsize=1)
def _service_table() -> dict[PortKey, str]:
    # Reading the file once: socket.getservbyport rescans /etc/services on every call, which measured
    # 1.5 s for the full TCP range on the development machine.
    table = dict(_BUILTIN_SERVICES)
    try:
        with open(_SERVICES_FILE, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return table
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or "/" not in fields[1]:
            continue
        number, _, proto_text = fields[1].partition("/")
        proto = _PROTOCOL_NAMES.get(proto_text.lower())  # not Protocol(...): an enum call a line adds up
        if proto is None:
            continue
        try:
            table[(proto, int(number))] = fields[0]
        except ValueError:
            continue
    return table


def service_name(proto: Protocol, port: int) -> str:
    """The conventional service name of a port, or ``"unknown"``."""
    return _service_table().get((proto, port), "unknown")
