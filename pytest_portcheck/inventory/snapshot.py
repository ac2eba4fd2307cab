"""Writing an inventory from a scan: ``portcheck snapshot``, what is open now as ``only_open`` hosts.

The scan comes in as neutral values (``ScanFacts``: resolutions, results, settings; a report of the
report package is one) and the probes' findings per port; out comes the YAML text, every line written
here, checked by the tests against the loader. Must not import pytest, yaml or the report package
(which sits above the inventory).
"""

from __future__ import annotations

import decimal
import ipaddress
import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol as Structural

from pytest_portcheck.engine import ProbeResult, Resolution, ScanError, ScanSettings, check_target
from pytest_portcheck.engine.model import ResultKey
from pytest_portcheck.engine.resolve import TargetTooLarge
from pytest_portcheck.inventory.model import check_host_name_syntax
from pytest_portcheck.ports import PortKey, Protocol, format_ports, service_name
from pytest_portcheck.probes.model import SERVICES, ServiceInfo


class ScanFacts(Structural):
    """What a snapshot reads of a scan (``report.model.ScanReport`` has it all)."""

    @property
    def resolutions(self) -> Sequence[Resolution]: ...
    @property
    def results(self) -> Sequence[ProbeResult]: ...
    @property
    def settings(self) -> ScanSettings: ...
    @property
    def started(self) -> str: ...
    @property
    def command(self) -> Sequence[str]: ...


def _safe_name(text: str) -> str:
    name = text.replace("::", "-").replace("/", "_").replace("@", "-").replace("[", "").replace("]", "")
    return name.strip() or "host"


def _spec(proto: Protocol, ports: Iterable[int]) -> str:
    # Every piece carries its protocol: in "1-5,7/udp" the suffix belongs to 7 only.
    return ",".join(f"{piece}/{proto.value}" for piece in format_ports(ports).split(","))


def _decimal(seconds: float) -> str:
    """Seconds as YAML reads a float: ``1e-05`` would be text in YAML 1.1, ``0.00001`` is not."""
    text = format(decimal.Decimal(repr(seconds)), "f")
    return text if "." in text else text + ".0"


@dataclass(frozen=True, slots=True)
class _Declared:
    """What one port of one address is declared as: open (with the service the probes named, and
    whether it asked for a password), or silent (UDP open|filtered, declared ``filtered:``)."""

    silent: bool = False
    service: str | None = None
    auth_required: bool = False


_Declaration = dict[int, _Declared]
"""Per port of one address and protocol: what it is declared as (ports absent must not be open)."""


def snapshot_inventory(
    report: ScanFacts,
    services: Mapping[ResultKey, ServiceInfo],
    ports: Sequence[PortKey],
    command: Sequence[str],
) -> str:
    """An inventory of what is open now: ``only_open`` per host and protocol, the scanned ports as
    its range; UDP ports that stayed silent are declared ``filtered:`` (they would fail the range).

    Each target is written as given (the name, the block), never as one address it resolved to:
    every address it resolves to when the inventory is checked must satisfy it. Where its addresses
    differ in what is open (or in what answers there), every known address gets a host of its own
    holding all it showed, pinned to that address, so it is still checked if the name stops
    resolving to it; and the target keeps a host for what they all share (its range without the
    ports they differ on), which a new address of the target must satisfy. A scan of TCP and UDP
    gets one host per protocol, since a range covers one protocol.
    """
    protocols = sorted({proto for proto, _ in ports})
    lines = [
        f"# Inventory snapshot written by {report.command[0] if report.command else 'portcheck'} "
        f"at {report.started}",
        f"# Command: {shlex.join(command)}",
        "# Every port under only_open may be open; every other port of its range must stay shut.",
        "# Review it before committing it: what is open today is not always what should be.",
        "version: 1",
        "defaults:",
        f"  timeout: {_decimal(report.settings.timeout)}",
        f"  retries: {report.settings.retries}",
        "hosts:",
    ]
    found = _what_was_found(report, services)
    names: set[str] = set()
    before = len(lines)
    for resolution in report.resolutions:
        if resolution.error is not None:
            lines.append(f"  # {_comment(resolution.host)}: left out, {_comment(resolution.error)}")
            continue
        for target, addresses, note in _inventory_targets(resolution.host, resolution.addresses):
            if note:
                lines.append(f"  # {note}")
            for proto in protocols:
                scanned = [port for key_proto, port in ports if key_proto is proto]
                base = target if len(protocols) == 1 else f"{target}-{proto.value}"
                per_address = {address: found.get((resolution.host, address, proto)) for address in addresses}
                declared = {
                    address: known if known is not None else found.get(("", address, proto), {})
                    for address, known in per_address.items()
                }
                lines += _target_hosts(target, base, proto, scanned, declared, services, names)
    if len(lines) == before or all(line.startswith("  #") for line in lines[before:]):
        lines.append("  # no host resolved: nothing to declare")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    """Text from a report (a resolver's message, a name nmap's XML held) safe on one YAML comment line."""
    return " ".join(text.split())


def _inventory_targets(target: str, addresses: Sequence[str]) -> list[tuple[str, Sequence[str], str | None]]:
    """(what to write as the address, the addresses it stands for, a comment): the target itself
    where an inventory takes it; a block too large for one host as blocks of the largest size one
    takes; anything else an inventory refuses (a name from a foreign report) as its addresses."""
    try:
        check_target(target)
        check_host_name_syntax(target)
    except TargetTooLarge as exc:
        network = ipaddress.ip_network(target.strip("[]"), strict=False)
        prefix = network.max_prefixlen - (exc.limit.bit_length() - 1)
        shift = network.max_prefixlen - prefix
        blocks: dict[int, list[str]] = {}
        for address in addresses:
            blocks.setdefault(int(ipaddress.ip_address(address)) >> shift, []).append(address)
        split = [
            (str(type(network)((number << shift, prefix))), members, None)
            for number, members in blocks.items()
        ]
        note = f"{target}: more addresses than one inventory host takes, one host per /{prefix} block"
        return [(split[0][0], split[0][1], note), *split[1:]] if split else []
    except ScanError as exc:
        note = (
            f"{_comment(target)} cannot be an inventory address ({_comment(str(exc))}): one host per address"
        )
        return [
            (address, (address,), note if index == 0 else None) for index, address in enumerate(addresses)
        ]
    return [(target, addresses, None)]


def _target_hosts(
    target: str,
    base: str,
    proto: Protocol,
    scanned: Sequence[int],
    declared: Mapping[str, _Declaration],
    services: Mapping[ResultKey, ServiceInfo],
    names: set[str],
) -> list[str]:
    """The hosts one target needs for one protocol: itself alone when its addresses agree; else one
    host per known address and the target for what they share (module docstring of snapshot_inventory)."""
    addresses = list(declared)
    first = declared[addresses[0]]
    range_spec = _spec(proto, scanned)
    if all(declaration == first for declaration in declared.values()):
        name = _unique_name(_safe_name(base), names)
        return _snapshot_host(name, target, addresses[0], proto, range_spec, first, services)
    differ = sorted(
        {port for declaration in declared.values() for port in declaration}
        - {port for port, what in first.items() if all(d.get(port) == what for d in declared.values())}
    )
    shared = {port: what for port, what in first.items() if port not in differ}
    rest = [port for port in scanned if port not in set(differ)]
    lines = [
        f"  # {target}: its addresses differ in what is open on {_spec(proto, differ)}: one host per known",
        "  # address (checked even if the name stops resolving to it), and the target for what they share",
    ]
    if rest:
        name = _unique_name(_safe_name(base), names)
        lines += _snapshot_host(name, target, addresses[0], proto, _spec(proto, rest), shared, services)
    else:
        lines.append(
            f"  # {target}: every port scanned differs between its addresses: a new address is not judged"
        )
    for address in addresses:
        name = _unique_name(_safe_name(f"{base}-{address}"), names)
        lines += _snapshot_host(name, address, address, proto, range_spec, declared[address], services)
    return lines


def _what_was_found(
    report: ScanFacts, services: Mapping[ResultKey, ServiceInfo]
) -> dict[tuple[str, str, Protocol], _Declaration]:
    """Per (target, address, protocol), and per ("", address, protocol) for any target: the ports that
    answered open (with what answers there) or stayed silent. A plugin's report files a port shared by
    two hosts under one of them only: the other finds it by its address."""
    found: dict[tuple[str, str, Protocol], _Declaration] = {}
    for result in report.results:
        if result.address is None:
            continue
        own = found.setdefault((result.host, result.address, result.proto), {})
        anyone = found.setdefault(("", result.address, result.proto), {})
        if result.state.value == "open":
            what = _Declared()
            info = (
                services.get((result.address, result.proto, result.port))
                if result.proto is Protocol.TCP
                else None
            )
            if info is not None and info.service in SERVICES:
                # a password found in place is kept in place; an exposure is only noted
                what = _Declared(service=info.service, auth_required=info.auth == "required")
        elif result.state.value == "open|filtered":
            what = _Declared(silent=True)
        else:
            continue
        own[result.port] = what
        anyone.setdefault(result.port, what)
    return found


def _unique_name(name: str, taken: set[str]) -> str:
    """``::1`` and ``[::1]`` are one name once cleaned: the second gets a number, not a duplicate key."""
    unique, number = name, 2
    while unique in taken:
        unique, number = f"{name}-{number}", number + 1
    taken.add(unique)
    return unique


def _snapshot_host(
    name: str,
    address: str,
    described: str,
    proto: Protocol,
    range_spec: str,
    declared: _Declaration,
    services: Mapping[ResultKey, ServiceInfo],
) -> list[str]:
    """One host: ``address`` as written; ``described`` the address whose probes the comments quote."""
    lines = [
        f"  {json.dumps(name)}:",
        f"    address: {json.dumps(address)}",
        f"    range: {json.dumps(range_spec)}",
    ]
    opened = sorted(port for port, what in declared.items() if not what.silent)
    silent = sorted(port for port, what in declared.items() if what.silent)
    lines.append("    only_open:" + ("" if opened else " []"))
    for port in opened:
        what = declared[port]
        if what.service is not None:
            info = services.get((described, proto, port))
            note = f"  # {info.describe()}" if info is not None and (info.evidence or info.product) else ""
            auth = ", auth: required" if what.auth_required else ""
            lines.append(f"      - {{port: {port}, service: {what.service}{auth}}}{note}")
        elif proto is Protocol.TCP:
            lines.append(f"      - {port}  # {service_name(proto, port)}")
        else:
            lines.append(f"      - {json.dumps(f'{port}/{proto.value}')}  # {service_name(proto, port)}")
    if silent:
        lines.append("    # no reply and no ICMP error (open|filtered): a silent service, or a drop")
        lines.append("    filtered:")
        lines += [f"      - {json.dumps(f'{port}/{proto.value}')}" for port in silent]
    return lines
