"""Outcome records for the finding writers' tests: plain frozen dataclasses that satisfy
``findings.Outcome`` structurally, as the plugin's item records and judged reports will."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pytest_portcheck.judge.findings import DeclaringLocation, FindingKind, FoundPort, Outcome


@dataclass(frozen=True, slots=True)
class Found:
    address: str
    port: int
    state: str


@dataclass(frozen=True, slots=True)
class Declared:
    path: str
    line: int
    description: str


@dataclass(frozen=True, slots=True)
class Item:
    host: str
    target: str
    expected: str
    verdict: str
    message: str = ""
    line: int = 1
    found: tuple[Found, ...] = ()
    inventory: str = "inventory.yml"
    vantage: str | None = None
    declared_at: Declared | None = None
    kind: FindingKind | None = None

    @property
    def nodeid(self) -> str:
        name = self.expected + (f"-from-{self.vantage}" if self.vantage else "")
        return f"{self.inventory}::{self.host}::{self.target}::{name}"


# Type checking fails here if these classes stop satisfying the protocols the writers read.
_OUTCOME: Outcome = Item("host", "tcp/1", "open", "passed")
_FOUND: FoundPort = Found("10.0.0.1", 1, "open")
_DECLARED: DeclaringLocation = Declared("compose.yml", 1, "service web")


def port(host: str, number: int, expected: str, verdict: str, *states: str, **fields: object) -> Item:
    """An item on one port, found in ``states`` on 10.0.0.1, 10.0.0.2, ... (all on port ``number``)."""
    found = tuple(Found(f"10.0.0.{index + 1}", number, state) for index, state in enumerate(states))
    item = Item(host, f"tcp/{number}", expected, verdict, found=found)
    return replace(item, **fields)  # type: ignore[arg-type]


def fleet() -> list[Item]:
    """One outcome of every kind, and a pass and a waived failure, each on its own inventory line."""
    return [
        port("web", 22, "open", "passed", "open", line=3, message="web tcp/22: open as expected"),
        port("web", 5432, "closed", "failed", "open", line=4,
             message="web (10.0.0.1) tcp/5432: expected closed, found OPEN — syn-ack in 0.2 ms (postgresql)"),
        port("web", 80, "open", "failed", "closed", line=5,
             message="web (10.0.0.1) tcp/80: expected open, found CLOSED — conn-refused in 0.1 ms"),
        port("web", 9200, "filtered", "failed", "closed", line=6,
             message="web tcp/9200: expected filtered, found CLOSED — the port is reachable through the firewall"),
        port("cache", 6379, "open", "failed", "open", line=9, kind=FindingKind.NO_AUTHENTICATION,
             message="cache tcp/6379: redis answers without authentication (auth: required)"),
        port("cache", 443, "open", "failed", "open", line=10, kind=FindingKind.TLS,
             message="cache tcp/443: TLS version TLSv1.1 is below the minimum TLSv1.2"),
        port("cache", 25, "open", "failed", "open", line=11, kind=FindingKind.WRONG_SERVICE,
             message="cache tcp/25: expected smtp, found http"),
        port("cache", 8443, "open", "failed", "open", line=12,
             message="cache tcp/8443: expected https, found tls"),
        port("ghost", 22, "open", "error", line=15, message="ghost tcp/22: cannot check — name does not resolve"),
        port("old", 23, "closed", "waived", "open", line=18, message="waived until 2099-01-01: telnet"),
        Item("edge", "tcp/1-65535", "only_open", "failed", line=21,
             found=(Found("10.0.0.9", 8080, "open"), Found("10.0.0.9", 9090, "open")),
             message="edge: 2 unexpected open port(s) in tcp/1-65535: 8080 (http), 9090 (unknown)"),
    ]  # fmt: skip
