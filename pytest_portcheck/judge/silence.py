"""The silence rules: when nothing answered, what a silent port proves, and what every front end says.

"Nothing answered" has one definition (``silent_addresses``): an address on which every port probed
stayed silent may be wrong or down, and its silence would satisfy ``closed:`` and ``only_open:`` — a
warning, or with ``--portcheck-strict`` an error. A silent port with a socket listening behind it is
exposure (``silent_listener``); a pass resting on silence an address left unresolved is shaky
(``unresolved_silence``).
Pure: must not import pytest, yaml, the scanner or the probes' I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

from pytest_portcheck.engine import AddressQuality, PortState, ProbeResult, Reason, Resolution
from pytest_portcheck.judge.verdict import Judgement, Verdict
from pytest_portcheck.ports import format_ports

SILENT = frozenset({PortState.FILTERED, PortState.OPEN_FILTERED})
HostKey = TypeVar("HostKey", bound=Hashable)


def unresolved_silence(
    found: Sequence[ProbeResult], quality: Mapping[str, AddressQuality]
) -> list[ProbeResult]:
    """Silent results from addresses that dropped probes and left some silence unresolved: a pass
    resting on them may hide an open port the address was too busy limiting us to show."""
    return [
        r
        for r in found
        if r.state in SILENT
        and r.reason == Reason.NO_RESPONSE
        and (q := quality.get(r.address or "")) is not None
        and q.limited
        and q.unresolved
    ]


def strict_silence_message(
    where: str, shaky: Mapping[str, int], quality: Mapping[str, AddressQuality]
) -> str:
    """``shaky``: per address, how many silent ports a pass would rest on."""
    lines = []
    for address, count in shaky.items():
        q = quality[address]
        lines.append(
            f"{where}: {count} silent port(s) on {address}, which dropped {q.drops:,} probe(s) it later "
            f"answered (rate limiting or loss) and left silence unresolved on {q.unresolved:,} port(s): "
            "the pass would rest on silence we could not explain (--portcheck-strict); "
            "set a lower max_rate for this host, or more retries"
        )
    return "\n".join(lines)


def silent_listener(result: ProbeResult) -> bool:
    """Silence with a socket of the scanned host listening behind it (the engine's listen-no-accept,
    on local addresses): the port is exposed although it does not answer now, so neither ``closed:``
    nor ``filtered:`` nor an ``only_open`` range accepts it."""
    return result.reason == Reason.LISTEN_NO_ACCEPT


def listening_message(host: str, where: str, ports: Sequence[int]) -> str:
    """What an ``only_open`` range says of its ``silent_listener`` ports (``where``: its label)."""
    return (
        f"{host}: {len(ports)} port(s) in {where} where a socket listens but did not complete the "
        f"handshake (listen-no-accept): {format_ports(ports)} — exposed even though they do not answer now"
    )


def silent_addresses(results: Iterable[ProbeResult]) -> frozenset[str]:
    """The one definition of "nothing answered": addresses on which every port probed (by any host,
    expectation or range) stayed silent (filtered or open|filtered). Such an address may be wrong or
    down, and its silence would satisfy closed: and only_open: — so it is warned about, or an error."""
    return silent_among((result.address, result.state) for result in results)


def silent_among(states: Iterable[tuple[str | None, PortState]]) -> frozenset[str]:
    """``silent_addresses`` over (address, state) pairs, for readers that hold states without
    results (a shard report's usual state of an address stands for many ports)."""
    seen: dict[str, set[PortState]] = {}
    for address, state in states:
        if address is not None:
            seen.setdefault(address, set()).add(state)
    return frozenset(address for address, found in seen.items() if found <= SILENT)


def silent_of(resolution: Resolution | None, silent: Collection[str]) -> tuple[str, ...]:
    """The addresses of one host on which nothing answered."""
    if resolution is None or resolution.error is not None:
        return ()
    return tuple(address for address in resolution.addresses if address in silent)


def silent_hosts(items: Iterable[tuple[HostKey, Sequence[str]]]) -> dict[HostKey, tuple[str, ...]]:
    """Hosts on which nothing answered, from their items as judged (each item's ``silent_of``): per
    host key (the summaries use (inventory, host name), so two inventories' ``web`` stay apart), its
    silent addresses, each once, in the order met. The one list every summary warns about."""
    silent: dict[HostKey, dict[str, None]] = {}
    for key, addresses in items:
        if addresses:
            silent.setdefault(key, {}).update(dict.fromkeys(addresses))
    return {key: tuple(addresses) for key, addresses in silent.items()}


def silence_message(where: str, silent: Sequence[str]) -> str:
    """What every front end says of a host on which nothing answered (a warning, or the error of
    ``--portcheck-strict``)."""
    return f"{where}: no port answered on {', '.join(silent)} — is the address right?"


def silence_error(where: str, silent: Sequence[str]) -> Judgement:
    return Judgement(Verdict.ERROR, f"{silence_message(where, silent)} (--portcheck-strict)", ())


def per_address(results: Sequence[ProbeResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.address or ""] = counts.get(result.address or "", 0) + 1
    return counts
