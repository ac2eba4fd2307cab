"""What answers on the open ports: the protocol probes a scan asks for, their requirements merged.

``identify_open_ports`` probes every open TCP port (``portcheck scan --banner``);
``identify_declared_services`` those an inventory names a service for, merging the requirements that
meet on one port (names, verification, a TLS floor) so that the outcome never depends on their order,
and reading a certificate without verification where verification failed. The I/O is
``probes.driver``'s.
Must not import pytest, yaml, the plugin or the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from pytest_portcheck.engine import PortState, ProbeResult
from pytest_portcheck.engine.model import ResultKey, port_key
from pytest_portcheck.inventory.model import Expectation, HostSpec, ServiceRequirement
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.connection import ProbeRequest
from pytest_portcheck.probes.driver import identify_services
from pytest_portcheck.probes.model import NameAnswer, ServiceInfo, probe_name, tls_rank


def identify_open_ports(
    results: Sequence[ProbeResult], *, tls_verify: bool, timeout: float
) -> dict[ResultKey, ServiceInfo]:
    """Protocol probes on every open TCP port: what answers, with evidence."""
    keys: list[ResultKey] = []
    requests = []
    for result in results:
        # Probes speak TCP: a TCP answer on a UDP port's number would be another service's.
        if result.state is PortState.OPEN and result.address is not None and result.proto is Protocol.TCP:
            keys.append(port_key(result.address, result.proto, result.port))
            name = None if result.host == result.address else result.host
            requests.append(ProbeRequest(result.address, result.port, None, name, tls_verify))
    found = identify_services(requests, timeout=timeout, banner_wait=min(1.0, timeout))
    return dict(zip(keys, found, strict=True))


def identify_declared_services(
    pairs: Sequence[tuple[HostSpec, Expectation]],
    addresses: Mapping[str, tuple[str, ...]],
    by_key: Mapping[ResultKey, ProbeResult],
    all_banners: bool,
    unexpected: Sequence[tuple[HostSpec, Expectation]] = (),
) -> dict[ResultKey, ServiceInfo]:
    """One answer per open (address, port) that every requirement on it can be judged against.

    Requirements from different hosts or inventories may meet on one port: they are merged, never
    overwritten, so the outcome does not depend on their order. Each name gets its own probe, verified
    when any requirement under that name asks; where it fails, an unverified handshake still reads
    the certificate for the others. Each requirement is judged on its own name's verification.
    """
    asks: dict[ResultKey, _Asks] = {}
    flagged = [(True, pair) for pair in unexpected] + [(all_banners, pair) for pair in pairs]
    for always, (host, expectation) in flagged:
        wanted = expectation.service
        if (wanted is None and not always) or expectation.proto is not Protocol.TCP:
            continue  # the probes speak TCP: a UDP port's answer is the scan's
        name = probe_name(host.address)
        for address in addresses[host.address]:
            key = port_key(address, expectation.proto, expectation.port)
            result = by_key.get(key)
            if result is None or result.state is not PortState.OPEN:
                continue
            asks.setdefault(key, _Asks()).add(wanted, name)
    planned = [(key, request) for key, ask in asks.items() for request in ask.request(key)]
    found = identify_services(request for _, request in planned)
    found = _with_unverified_details([request for _, request in planned], found)
    answers: dict[ResultKey, list[tuple[ProbeRequest, ServiceInfo]]] = {}
    for (key, request), info in zip(planned, found, strict=True):
        answers.setdefault(key, []).append((request, info))
    return {key: _one_answer(named) for key, named in answers.items()}


class _Asks:
    """What the requirements met on one port ask of its probe."""

    def __init__(self) -> None:
        self.services: set[str] = set()
        self.verify: dict[str | None, bool] = {}
        """Per name asked for: whether any requirement under that name asks for verification."""
        self.banner_names: set[str | None] = set()
        self.tls_floor: str | None = None
        """The strictest TLS ``min_version`` asked for: the probe tries a handshake capped below it."""

    def add(self, wanted: ServiceRequirement | None, name: str | None) -> None:
        if wanted is None:
            self.banner_names.add(name)
            return
        self.services.add(wanted.service)
        floor = wanted.tls.min_version if wanted.tls else None
        if floor and (self.tls_floor is None or tls_rank(floor) > tls_rank(self.tls_floor)):
            self.tls_floor = floor
        self.verify[name] = self.verify.get(name, False) or bool(wanted.tls and wanted.tls.verify)

    def request(self, key: ResultKey) -> list[ProbeRequest]:
        """One probe per name asked for (SNI and verification depend on it), all with one first move."""
        expect = min(self.services, key=_first_move_rank) if self.services else None
        verify = self.verify or {min(self.banner_names, key=_name_order): False}
        return [
            ProbeRequest(key[0], key[2], expect, name, verify[name], self.tls_floor)
            for name in sorted(verify, key=_name_order)
        ]


def _name_order(name: str | None) -> tuple[bool, str]:
    return (name is not None, name or "")


def _first_move_rank(service: str) -> tuple[int, str]:
    # An https probe answers a tls requirement too; a client-first probe still reads a server that
    # speaks first, while a banner grab gets nothing from a server that waits.
    order = {"https": 0, "tls": 1}
    return (order.get(service, 2 if service in _CLIENT_FIRST else 3), service)


_CLIENT_FIRST = frozenset({"http", "postgresql", "redis", "memcached"})
_VERIFY_FAILED = "certificate verification failed"


def _with_unverified_details(
    requests: Sequence[ProbeRequest], found: Sequence[ServiceInfo]
) -> list[ServiceInfo]:
    """Where verification failed, read the certificate without it: the expiry, version and service
    requirements on the same port are judged on that, and the verification failure stays recorded."""
    failed = [
        index
        for index, (request, info) in enumerate(zip(requests, found, strict=True))
        if request.verify_tls and info.tls is None and (info.error or "").startswith(_VERIFY_FAILED)
    ]
    merged = list(found)
    retry = [replace(requests[index], verify_tls=False) for index in failed]
    for index, plain in zip(failed, identify_services(retry), strict=True):
        if plain.tls is not None:
            merged[index] = replace(plain, tls=replace(plain.tls, verified=False), error=found[index].error)
    return merged


def _one_answer(named: Sequence[tuple[ProbeRequest, ServiceInfo]]) -> ServiceInfo:
    """The answer for a port probed under one or more names. If the names got different answers
    (name-based virtual hosts), no single answer is true for all: say so rather than pick one.
    Otherwise each name's own verification is kept (``names``: a requirement is judged on the probe
    made for it, never on another name's), and the answer as a whole counts as verified only if
    every name that asked for verification got it verified."""
    first = named[0][1]
    if len(named) == 1:
        return first
    if any(_essence(info) != _essence(first) for _, info in named[1:]):
        services = {info.service for _, info in named}
        shown = "; ".join(f"{request.server_name or 'no name'}: {info.describe()}" for request, info in named)
        return ServiceInfo(
            services.pop() if len(services) == 1 else "unknown",
            "",
            error=f"the answer depends on the name asked for ({shown}): give each name its own address",
        )
    checked = [(request, info) for request, info in named if request.verify_tls]
    if first.tls is None or not checked:
        return first
    names = tuple(
        NameAnswer(request.server_name, info.tls is not None and info.tls.verified, info.error)
        for request, info in named
    )
    failed = [(request, info) for request, info in checked if info.tls is None or not info.tls.verified]
    if not failed:
        return replace(first, tls=replace(first.tls, verified=True), error=None, names=names)
    request, info = failed[0]
    why = f"as {request.server_name}: {info.error}" if request.server_name else info.error
    return replace(first, tls=replace(first.tls, verified=False), error=why, names=names)


def _essence(info: ServiceInfo) -> tuple[object, ...]:
    # What a name changes (SNI): the service and the certificate. Whether it verified is per name.
    tls = None if info.tls is None else replace(info.tls, verified=False)
    return (info.service, info.product, info.version, info.auth, tls)
