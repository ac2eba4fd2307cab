"""What a source declares, written as an inventory a person can review (``portcheck declared``).

``derived_inventory`` turns a ``SourceReading`` into the text of a version 1 inventory: one host per
address the exposures are open at (a port bound to every address, or on every node, goes to the
address the user names), each declared port an ``open:`` entry (``only_open:`` with a range when one
is given) commented with the source file and line that declares it. What no port entry can say is a
comment, never dropped: a port a firewall rule admits from one network only, one port of a range
chosen at start, and the reader's notes. The text is the derivation the plugin applies to a source
entry, laid out; it is checked by loading it back (``load.parse_inventory``) in the tests.
Must not import pytest, the engine's scanner, the judge or the probes.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_portcheck.inventory.declared import applies, is_allowance
from pytest_portcheck.inventory.sources import Exposure, Reach, SourceKind, SourceReading


@dataclass(frozen=True, slots=True)
class DerivedHost:
    """One host of the printed inventory: its address and the exposures open there."""

    name: str
    address: str
    exposures: tuple[Exposure, ...]


def hosts_of(reading: SourceReading, address: str, name: str) -> list[DerivedHost]:
    """The hosts the exposures land on: ``address`` for what binds every address (and the addresses
    that equal it), then one host per other declared address, in the order the source declares them."""
    addresses = [address]
    for exposure in reading.exposures:
        bound = exposure.address is not None and exposure.reach is not Reach.NETWORK
        if bound and not any(applies(exposure, known, ()) for known in addresses):
            addresses.append(str(exposure.address))
    hosts = []
    for index, where in enumerate(addresses):
        found = tuple(
            e for e in reading.exposures if applies(e, where, ()) and not _elsewhere(e, where, address)
        )
        if found or len(addresses) == 1:  # the default host, empty, only when it is the only one
            hosts.append(DerivedHost(name if index == 0 else f"{name}-{index}", where, found))
    return hosts


def _elsewhere(exposure: Exposure, where: str, default: str) -> bool:
    """A wildcard bind belongs to the default host only (it would apply to every address)."""
    return exposure.address in (None, "0.0.0.0", "::") and where != default


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def derived_inventory(
    reading: SourceReading, *, address: str, name: str, port_range: str | None, command: Sequence[str]
) -> str:
    """The inventory text (see the module's docstring)."""
    lines = [
        f"# Declared by {', '.join(reading.paths)}: written by `{' '.join(command)}` for review.",
        "# Each entry names the line that declares it; read the source live instead with",
        f"#   only_open: {{{reading.kind.value}: {reading.paths[0]}}}",
    ]
    for note in reading.notes:
        lines.append(f"# not checked: {note}")
    for exposure in reading.exposures:
        if exposure.reach is Reach.NETWORK:
            lines.append(
                f"# from {exposure.peer} only (a vantage's from: list): {exposure.spec} — {exposure.origin}"
            )
    lines.append("hosts:")
    for host in hosts_of(reading, address, name):
        lines += _host_lines(host, port_range, reading.kind)
    return "\n".join(lines) + "\n"


def _host_lines(host: DerivedHost, port_range: str | None, kind: SourceKind) -> list[str]:
    lines = [f"  {host.name}:", f"    address: {json.dumps(host.address)}"]
    if _loopback(host.address) and any(e.reach is Reach.THIS_HOST for e in host.exposures):
        lines.insert(0, "  # published on loopback only: scan this host on the machine itself (a vantage)")
    entries: dict[str, Exposure] = {}
    allowed: list[Exposure] = []
    for exposure in host.exposures:
        if is_allowance(exposure, kind):
            allowed.append(exposure)
        else:
            entries.setdefault(exposure.spec, exposure)  # two binds of one port are one entry
    key = "only_open" if port_range else "open"
    if not entries:
        key = "only_open"
        lines.append("    only_open: []  # nothing declared open here: no port may be")
    else:
        lines.append(f"    {key}:")
        width = max(len(json.dumps(spec)) for spec in entries)
        for spec, exposure in entries.items():
            lines.append(f"      - {json.dumps(spec).ljust(width)}  # {exposure.origin}")
    for exposure in allowed:
        lines.append(f"    # allowed, not required: {exposure.spec} — {exposure.origin}")
    if port_range and key == "only_open":
        lines.append(f"    range: {json.dumps(port_range)}")
    return lines
