"""Terraform plans and states (``terraform show -json``): which TCP and UDP ports firewall rules open.

Reads the documented JSON output (``format_version``; ``planned_values.root_module`` of a plan or
``values.root_module`` of a state, ``child_modules`` recursively) and, of its managed resources:
``aws_security_group`` inline ``ingress`` blocks, ``aws_security_group_rule`` (type ingress),
``aws_vpc_security_group_ingress_rule``, ``google_compute_firewall`` (INGRESS ``allow`` blocks) and
``azurerm_network_security_rule`` / ``azurerm_network_security_group`` inline rules (Inbound, Allow).
Each rule becomes one exposure a source it admits: reach everyone for ``0.0.0.0/0``, ``::/0``,
``*`` or ``Internet``, else that network or named group. A rule for every protocol (``-1``,
``all``, ``*``) is declared as 1-65535 for tcp and udp, with a note. Deny and egress rules are not
subtracted or read. Lines come from the JSON text itself (``locatedjson``).
Imports only the standard library, ``pytest_portcheck.ports`` and this package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pytest_portcheck.inventory.sources.locatedjson import LineIndex, LocatedObject, load_located
from pytest_portcheck.inventory.sources.model import (
    Exposure,
    Findings,
    Origin,
    Reach,
    SourceError,
    SourceKind,
    SourceReading,
    reach_of_peer,
)
from pytest_portcheck.ports import MAX_PORT, MIN_PORT, Protocol

_BOTH = (Protocol.TCP, Protocol.UDP)
_AWS_PROTOCOLS = {"tcp": Protocol.TCP, "6": Protocol.TCP, "udp": Protocol.UDP, "17": Protocol.UDP}
_AWS_PORTLESS = frozenset(("icmp", "icmpv6", "1", "58"))
_GCP_PROTOCOLS = {"tcp": Protocol.TCP, "udp": Protocol.UDP}
_GCP_PORTLESS = frozenset(("icmp", "esp", "ah", "sctp", "ipip"))
_AZURE_PROTOCOLS = {"tcp": Protocol.TCP, "udp": Protocol.UDP}
_AZURE_PORTLESS = frozenset(("icmp", "esp", "ah"))
_AZURE_EVERYONE = frozenset(("*", "internet", "any"))
_ALL = (MIN_PORT, MAX_PORT)


class _Invalid(Exception):
    """A rule that cannot be read: the message says what to fix."""


@dataclass(frozen=True, slots=True)
class _Resource:
    address: str
    type: str
    values: dict[str, Any]
    line: int


@dataclass(slots=True)
class _Context:
    path: str
    lines: LineIndex
    findings: Findings

    def origin(self, block: object, fallback: int, entry: str, owner: str) -> Origin:
        line = self.lines.line_at(block.offset) if isinstance(block, LocatedObject) else fallback
        return Origin(self.path, line, entry, owner)

    def each(
        self, resource: _Resource, blocks: Any, label: str, read: Callable[[dict[str, Any], str], None]
    ) -> None:
        """Read each block of a list on its own, so that every bad block of a file is reported."""
        for index, block in enumerate(blocks or ()):
            where = f"{label}[{index}]"
            line = self.lines.line_at(block.offset) if isinstance(block, LocatedObject) else resource.line
            try:
                if not isinstance(block, dict):
                    raise _Invalid(f"{where} is not a block")
                read(block, where)
            except _Invalid as problem:
                self.findings.problem(self.path, line, f"{resource.address}: {problem}")


def read_terraform(path: str | os.PathLike[str]) -> SourceReading:
    """The ports the firewall rules of a plan or a state open, and to whom.

    Raises ``SourceError`` with every problem of the file, or when it declares no rule at all."""
    name = os.fspath(path)
    findings = Findings()
    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise SourceError(
            name,
            0,
            "the Terraform JSON does not exist: write it with "
            "'terraform show -json PLAN > FILE' and check the path",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(
            name, 0, f"cannot read the Terraform JSON ({error}): make it a readable UTF-8 file"
        ) from None
    lines = LineIndex(text)
    try:
        document = load_located(text)
    except json.JSONDecodeError as error:
        raise SourceError(
            name,
            error.lineno,
            f"not valid JSON ({error.msg}, column {error.colno}): write it with 'terraform show -json'",
        ) from None
    context = _Context(name, lines, findings)
    root = _root_module(document, name)
    counted = 0
    for resource in _resources(root, lines):
        handler = _HANDLERS.get(resource.type)
        if handler is None:
            continue
        counted += 1
        try:
            handler(resource, context)
        except _Invalid as problem:
            findings.problem(name, resource.line, f"{resource.address}: {problem}")
    if not counted and not findings.problems:
        findings.problem(
            name,
            0,
            f"declares none of the firewall resources read here ({', '.join(sorted(_HANDLERS))}): "
            "is this the plan of the network?",
        )
    return findings.reading(SourceKind.TERRAFORM, [name])


def _root_module(document: object, name: str) -> dict[str, Any]:
    if not isinstance(document, dict) or "format_version" not in document:
        hint = " (a raw .tfstate file)" if isinstance(document, dict) and "resources" in document else ""
        raise SourceError(
            name,
            1,
            f"not the JSON of 'terraform show -json'{hint}: write it with "
            "'terraform show -json PLAN > FILE' or 'terraform show -json > FILE' for the state",
        )
    for key in ("planned_values", "values"):
        section = document.get(key)
        if isinstance(section, dict) and isinstance(section.get("root_module"), dict):
            root: dict[str, Any] = section["root_module"]
            return root
    raise SourceError(
        name,
        1,
        "has neither planned_values.root_module (a plan) nor values.root_module "
        "(a state): is the state empty? Write it after 'terraform apply'",
    )


def _resources(module: dict[str, Any], lines: LineIndex) -> Iterator[_Resource]:
    for resource in module.get("resources") or ():
        if not isinstance(resource, dict) or resource.get("mode", "managed") != "managed":
            continue
        values = resource.get("values")
        # A plain copy, without its own offset: a rule that is the resource itself is at the resource's line.
        values = dict(values) if isinstance(values, dict) else {}
        line = lines.line_at(resource.offset) if isinstance(resource, LocatedObject) else 0
        yield _Resource(
            str(resource.get("address", "?")),
            str(resource.get("type", "")),
            values,
            line,
        )
    for child in module.get("child_modules") or ():
        if isinstance(child, dict):
            yield from _resources(child, lines)


# ---- AWS ----


def _aws_security_group(resource: _Resource, context: _Context) -> None:
    def read(rule: dict[str, Any], label: str) -> None:
        peers = [
            *_strings(rule, "cidr_blocks"),
            *_strings(rule, "ipv6_cidr_blocks"),
            *_strings(rule, "prefix_list_ids"),
            *_strings(rule, "security_groups"),
        ]
        if rule.get("self"):
            peers.append("self")
        _aws_rule(resource, context, rule, label, "protocol", peers)

    context.each(resource, resource.values.get("ingress"), "ingress", read)


def _aws_security_group_rule(resource: _Resource, context: _Context) -> None:
    values = resource.values
    if values.get("type") != "ingress":
        return
    peers = [
        *_strings(values, "cidr_blocks"),
        *_strings(values, "ipv6_cidr_blocks"),
        *_strings(values, "prefix_list_ids"),
    ]
    if values.get("source_security_group_id"):
        peers.append(str(values["source_security_group_id"]))
    if values.get("self"):
        peers.append("self")
    _aws_rule(resource, context, values, "rule", "protocol", peers)


def _aws_ingress_rule(resource: _Resource, context: _Context) -> None:
    values = resource.values
    peers = [
        str(values[key])
        for key in ("cidr_ipv4", "cidr_ipv6", "prefix_list_id", "referenced_security_group_id")
        if values.get(key)
    ]
    _aws_rule(resource, context, values, "rule", "ip_protocol", peers)


def _aws_rule(
    resource: _Resource,
    context: _Context,
    rule: dict[str, Any],
    label: str,
    protocol_key: str,
    peers: list[str],
) -> None:
    protocol_text = str(rule.get(protocol_key, "")).lower()
    origin_line = resource.line
    if protocol_text in ("-1", "all"):
        _every_protocol(resource, context, rule, label, peers, f'{protocol_key} = "{rule.get(protocol_key)}"')
        return
    protocol = _AWS_PROTOCOLS.get(protocol_text)
    if protocol is None:
        if protocol_text in _AWS_PORTLESS or protocol_text.isdigit():
            note = context.origin(
                rule, origin_line, f"{resource.address} {label} {protocol_text}", resource.address
            )
            context.findings.note(note, f"protocol {protocol_text} has no ports: not checked")
            return
        raise _Invalid(
            f"{label}: unknown protocol {rule.get(protocol_key)!r}: use tcp, udp, icmp, icmpv6 or -1"
        )
    low, high = _aws_ports(rule, label)
    _declare(resource, context, rule, label, (protocol,), [(low, high)], peers, None)


def _aws_ports(rule: dict[str, Any], label: str) -> tuple[int, int]:
    low, high = rule.get("from_port"), rule.get("to_port")
    if (
        not isinstance(low, int)
        or not isinstance(high, int)
        or isinstance(low, bool)
        or isinstance(high, bool)
    ):
        raise _Invalid(
            f"{label}: from_port and to_port must be numbers (known when planned), not {low!r} and {high!r}"
        )
    if not 0 <= low <= high <= MAX_PORT:
        raise _Invalid(f"{label}: ports {low}-{high} are not a range of ports: from_port <= to_port, 0-65535")
    if high < MIN_PORT:
        raise _Invalid(
            f'{label}: port 0 is no port: give from_port and to_port, or protocol "-1" for every port'
        )
    return max(low, MIN_PORT), high  # port 0 is no port: "0-65535" means all of them


# ---- Google Cloud ----


def _google_compute_firewall(resource: _Resource, context: _Context) -> None:
    values = resource.values
    if str(values.get("direction") or "INGRESS").upper() != "INGRESS":
        return
    owner = resource.address
    if values.get("disabled"):
        origin = context.origin(values, resource.line, f"{owner} (disabled)", owner)
        context.findings.note(origin, "the rule is disabled: it admits nothing")
        return
    peers = [
        *_strings(values, "source_ranges"),
        *(f"tag:{tag}" for tag in _strings(values, "source_tags")),
        *(f"serviceAccount:{account}" for account in _strings(values, "source_service_accounts")),
    ]
    if not peers:
        peers = ["0.0.0.0/0"]  # Google's documented default for an ingress rule without sources
    if values.get("deny"):
        origin = context.origin(values, resource.line, f"{owner} deny", owner)
        context.findings.note(origin, "deny blocks are not subtracted from what other rules allow")

    def read(block: dict[str, Any], label: str) -> None:
        protocol_text = str(block.get("protocol", "")).lower()
        if protocol_text == "all":
            _every_protocol(resource, context, block, label, peers, 'protocol = "all"')
            return
        protocol = _GCP_PROTOCOLS.get(protocol_text)
        if protocol is None:
            if protocol_text in _GCP_PORTLESS or protocol_text.isdigit():
                note = context.origin(block, resource.line, f"{owner} {label} {protocol_text}", owner)
                context.findings.note(note, f"protocol {protocol_text} is not checked (only tcp and udp are)")
                return
            raise _Invalid(f"{label}: unknown protocol {block.get('protocol')!r}: use tcp, udp, icmp or all")
        spans = [_span(text, label) for text in _strings(block, "ports")] or [_ALL]
        _declare(resource, context, block, label, (protocol,), spans, peers, None)

    context.each(resource, values.get("allow"), "allow", read)


# ---- Azure ----


def _azure_rule(resource: _Resource, context: _Context) -> None:
    _azure_one(resource, context, resource.values, "rule")


def _azure_group(resource: _Resource, context: _Context) -> None:
    def read(rule: dict[str, Any], label: str) -> None:
        _azure_one(resource, context, rule, f"{label} {rule.get('name', '')}".rstrip())

    context.each(resource, resource.values.get("security_rule"), "security_rule", read)


def _azure_one(resource: _Resource, context: _Context, rule: dict[str, Any], label: str) -> None:
    owner = resource.address
    if str(rule.get("direction", "")).lower() != "inbound":
        return
    if str(rule.get("access", "")).lower() != "allow":
        origin = context.origin(rule, resource.line, f"{owner} {label} Deny", owner)
        context.findings.note(origin, "deny rules are not subtracted from what other rules allow")
        return
    protocol_text = str(rule.get("protocol", "")).lower()
    if protocol_text in _AZURE_PORTLESS:
        origin = context.origin(rule, resource.line, f"{owner} {label} {protocol_text}", owner)
        context.findings.note(origin, f"protocol {rule.get('protocol')} has no ports: not checked")
        return
    if protocol_text == "*":
        protocols: tuple[Protocol, ...] = _BOTH
        origin = context.origin(rule, resource.line, f"{owner} {label} protocol *", owner)
        context.findings.note(
            origin,
            'protocol "*" (every protocol): its ports are declared for tcp and udp; '
            "other protocols are not checked",
        )
    elif protocol_text in _AZURE_PROTOCOLS:
        protocols = (_AZURE_PROTOCOLS[protocol_text],)
    else:
        raise _Invalid(
            f"{label}: unknown protocol {rule.get('protocol')!r}: use Tcp, Udp, Icmp, Esp, Ah or *"
        )
    port_texts = [
        text
        for text in [rule.get("destination_port_range"), *_strings(rule, "destination_port_ranges")]
        if text
    ]
    if not port_texts:
        raise _Invalid(f"{label}: no destination_port_range(s): give the ports, or '*' for all")
    spans = [_ALL if text == "*" else _span(str(text), label) for text in port_texts]
    peers = [
        text
        for text in [rule.get("source_address_prefix"), *_strings(rule, "source_address_prefixes")]
        if text
    ]
    destinations = [
        text
        for text in [rule.get("destination_address_prefix"), *_strings(rule, "destination_address_prefixes")]
        if text
    ]
    for destination in destinations or ["*"]:
        address = None if destination == "*" else str(destination)
        _declare(resource, context, rule, label, protocols, spans, [str(peer) for peer in peers], address)


# ---- shared ----


def _every_protocol(
    resource: _Resource, context: _Context, rule: dict[str, Any], label: str, peers: list[str], written: str
) -> None:
    origin = context.origin(rule, resource.line, f"{resource.address} {label} {written}", resource.address)
    context.findings.note(
        origin,
        f"{written} allows every protocol on every port: declared as 1-65535 for tcp "
        "and udp (other protocols are not checked); name the ports and protocols to narrow it",
    )
    _declare(resource, context, rule, label, _BOTH, [_ALL], peers, None)


def _declare(
    resource: _Resource,
    context: _Context,
    rule: dict[str, Any],
    label: str,
    protocols: tuple[Protocol, ...],
    spans: list[tuple[int, int]],
    peers: list[str],
    address: str | None,
) -> None:
    owner = resource.address
    if not peers:
        origin = context.origin(rule, resource.line, f"{owner} {label}", owner)
        context.findings.note(
            origin,
            "the rule names no source in this file (known only after apply?): "
            "read the state after 'terraform apply'",
        )
        return
    for protocol in protocols:
        for low, high in spans:
            ports = str(low) if low == high else f"{low}-{high}"
            for peer in peers:
                entry = f"{owner} {label} {protocol.value} {ports} from {peer}"
                origin = context.origin(rule, resource.line, entry, owner)
                reach = Reach.EVERYONE if peer.lower() in _AZURE_EVERYONE else reach_of_peer(peer)
                context.findings.exposures.append(Exposure(protocol, low, high, address, reach, peer, origin))


def _span(text: str, label: str) -> tuple[int, int]:
    low_text, dash, high_text = str(text).strip().partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if dash else low
    except ValueError:
        raise _Invalid(f"{label}: {text!r} is not a port or a range: write 22 or 8000-8080") from None
    if not MIN_PORT <= low <= high <= MAX_PORT:
        raise _Invalid(f"{label}: {text!r} is not a range of ports: LOW-HIGH within 1-65535")
    return low, high


def _strings(values: dict[str, Any], key: str) -> list[str]:
    found = values.get(key) or []
    if isinstance(found, str):
        return [found]
    return [str(item) for item in found if item not in (None, "")]


_HANDLERS: dict[str, Callable[[_Resource, _Context], None]] = {
    "aws_security_group": _aws_security_group,
    "aws_security_group_rule": _aws_security_group_rule,
    "aws_vpc_security_group_ingress_rule": _aws_ingress_rule,
    "google_compute_firewall": _google_compute_firewall,
    "azurerm_network_security_rule": _azure_rule,
    "azurerm_network_security_group": _azure_group,
}
