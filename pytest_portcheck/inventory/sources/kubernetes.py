"""Kubernetes manifests (files, no cluster): the ports their objects open outside the cluster.

Reads multi-document YAML and ``kind: List`` objects (what ``helm template`` and ``kubectl get -o
yaml`` write): Services of type NodePort (the node port on every node), LoadBalancer (the port on
the load balancer's address from ``status.loadBalancer.ingress``, ``spec.loadBalancerIP`` or the
caller's mapping, limited to ``loadBalancerSourceRanges``; and its node ports) and ``externalIPs``;
``hostPort`` and ``hostNetwork`` in the pod template of a Pod, Deployment, StatefulSet, DaemonSet,
ReplicaSet, ReplicationController, Job or CronJob; Ingress (80, and 443 with ``tls``). What cannot
be checked is a note: a ClusterIP Service, a node port the cluster picks, an address not in the
manifest. Every entry keeps its line.
Imports only the standard library, PyYAML (through ``yamlnodes``), ``pytest_portcheck.ports`` and
this package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pytest_portcheck.inventory.sources.model import (
    Exposure,
    Findings,
    Origin,
    SourceError,
    SourceKind,
    SourceReading,
    reach_of_bind,
    reach_of_peer,
)
from pytest_portcheck.inventory.sources.yamlnodes import (
    MappingProblem,
    YamlProblem,
    compose_documents,
    is_null,
    line_of,
    mapping,
    paused_gc,
    plain_int,
    yaml11_bool,
)
from pytest_portcheck.ports import MAX_PORT, MIN_PORT, Protocol

_PROTOCOLS = {"TCP": Protocol.TCP, "UDP": Protocol.UDP}
# Where each workload kind keeps its pod spec.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_READ_KINDS = ("Service", "Ingress", *_POD_SPEC_PATHS)
_NODE_PORT_RANGE = "30000-32767"

Entries = dict[str, tuple[ScalarNode, Node]]
_ServicePort = tuple[int, int, Protocol | None, int, int | None]
"""(line, index in spec.ports, protocol or None for SCTP, port, nodePort or None)"""


class _Invalid(Exception):
    """A value of the wrong shape: the line and the message with the fix."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class _Context:
    path: str
    node_addresses: tuple[str | None, ...]
    addresses: Mapping[str, Sequence[str]]
    namespace: str
    findings: Findings


@dataclass(frozen=True, slots=True)
class _Object:
    kind: str
    owner: str
    """``Kind/namespace/name``: the key of the caller's address mapping, too."""
    title: str
    """``Service default/web``: how entries are described."""
    entries: Entries


def read_kubernetes(
    paths: Sequence[str | os.PathLike[str]],
    *,
    node_addresses: Sequence[str] = (),
    addresses: Mapping[str, Sequence[str]] | None = None,
    namespace: str = "default",
) -> SourceReading:
    """The ports that the objects of these manifests open outside the cluster.

    ``node_addresses``: where node ports, host ports and host-network pods are open (none given:
    one exposure with address None, "every node"). ``addresses``: the address(es) of a load
    balancer or an ingress the manifest does not hold, keyed ``Service/NAMESPACE/NAME``,
    ``Ingress/NAMESPACE/NAME`` or ``IngressClass/CLASS``. ``namespace``: for objects without one.
    Raises ``SourceError`` with every problem of every file."""
    names = [os.fspath(path) for path in paths]
    if not names:
        raise SourceError("<kubernetes>", 0, "no manifest given: name at least one file")
    findings = Findings()
    nodes: tuple[str | None, ...] = tuple(node_addresses) or (None,)
    with paused_gc():
        for name in names:
            _read_file(_Context(name, nodes, addresses or {}, namespace, findings))
    return findings.reading(SourceKind.KUBERNETES, names)


def _read_file(context: _Context) -> None:
    path, findings = context.path, context.findings
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        findings.problem(path, 0, "the manifest does not exist: check the path")
        return
    except (OSError, UnicodeDecodeError) as error:
        findings.problem(path, 0, f"cannot read the manifest ({error}): make it a readable UTF-8 file")
        return
    counts = [0, 0]  # objects, objects of a kind read here
    try:
        for document in compose_documents(text):
            if not is_null(document):
                assert document is not None
                _read_item(document, context, counts)
    except YamlProblem as problem:
        findings.problem(
            path, problem.line, f"not valid YAML ({problem.message}): fix the syntax at this line"
        )
        return
    if not counts[0]:
        findings.problem(path, 0, "holds no Kubernetes object: is this the rendered manifest?")
    elif not counts[1]:
        findings.problem(
            path,
            0,
            f"holds {counts[0]} object(s) but none of the kinds that open ports ({', '.join(_READ_KINDS)}): "
            "name the manifest that holds them",
        )


def _read_item(node: Node, context: _Context, counts: list[int]) -> None:
    try:
        entries = _entries(node, "a Kubernetes object is a mapping with apiVersion, kind and metadata")
        kind = _text(entries, "kind", node)
        if kind.endswith("List") and "items" in entries:
            items = _sequence(entries["items"][1], "'items' must be a list of objects")
            for item in items:
                _read_item(item, context, counts)
            return
        counts[0] += 1
        obj = _object(kind, entries, node, context)
        if kind == "Service":
            counts[1] += 1
            _read_service(obj, context)
        elif kind == "Ingress":
            counts[1] += 1
            _read_ingress(obj, context)
        elif kind in _POD_SPEC_PATHS:
            counts[1] += 1
            _read_workload(obj, context)
        elif kind == "Gateway":
            _note(context, line_of(node), obj, f"{obj.title}: Gateway API listeners are not read: list them")
    except (_Invalid, MappingProblem) as problem:
        context.findings.problem(context.path, problem.line, problem.message)


def _object(kind: str, entries: Entries, node: Node, context: _Context) -> _Object:
    metadata = _entries(_value(entries, "metadata", node), "'metadata' must be a mapping with a name")
    name = _text(metadata, "name", node)
    namespace = _text(metadata, "namespace", node) if "namespace" in metadata else context.namespace
    return _Object(kind, f"{kind}/{namespace}/{name}", f"{kind} {namespace}/{name}", entries)


# ---- Services ----


def _read_service(obj: _Object, context: _Context) -> None:
    spec_node = obj.entries.get("spec", (None, None))[1]
    line = line_of(obj.entries["kind"][0])
    if is_null(spec_node):
        _note(
            context,
            line,
            obj,
            f"{obj.title} has no spec: a ClusterIP Service, not exposed outside the cluster",
        )
        return
    assert spec_node is not None
    spec = _entries(spec_node, "'spec' must be a mapping")
    service_type = _text(spec, "type", spec_node) if "type" in spec else "ClusterIP"
    ports = _service_ports(spec, obj, context)
    if service_type == "ExternalName":
        _note(context, line, obj, f"{obj.title} is an ExternalName Service: it opens no port")
        return
    if service_type not in ("ClusterIP", "NodePort", "LoadBalancer"):
        raise _Invalid(
            line_of(spec["type"][1]),
            f"unknown Service type {service_type!r}: use ClusterIP, NodePort, LoadBalancer or ExternalName",
        )
    external_ips = _external_ips(obj, spec, ports, context)
    if service_type == "ClusterIP":
        if not external_ips:
            _note(context, line, obj, f"{obj.title} is a ClusterIP Service: not exposed outside the cluster")
        return
    if service_type == "LoadBalancer":
        _load_balancer(obj, spec, ports, context)
        allocate = spec.get("allocateLoadBalancerNodePorts")
        if allocate is not None and yaml11_bool(allocate[1]) is False:
            return
    _node_ports(obj, ports, context)


def _external_ips(obj: _Object, spec: Entries, ports: list[_ServicePort], context: _Context) -> int:
    """Every port of the Service on each of its ``externalIPs`` (whatever its type); how many IPs."""
    external_ips = [_scalar(item, "an external IP") for item in _list(spec, "externalIPs")]
    for _, index, protocol, port, _ in ports:
        for address_node, address in external_ips:
            entry = f"spec.ports[{index}] port {port} on externalIPs {address}"
            _expose(context, obj, protocol, port, address, None, line_of(address_node), entry)
    return len(external_ips)


def _node_ports(obj: _Object, ports: list[_ServicePort], context: _Context) -> None:
    for port_line, index, protocol, _, node_port in ports:
        if node_port is None:
            _note(
                context,
                port_line,
                obj,
                f"{obj.title} spec.ports[{index}]: the cluster picks the node port "
                f"(from {_NODE_PORT_RANGE}): it cannot be checked; set nodePort",
            )
            continue
        for node in context.node_addresses:
            entry = f"spec.ports[{index}] nodePort {node_port}"
            _expose(context, obj, protocol, node_port, node, None, port_line, entry)


def _service_ports(spec: Entries, obj: _Object, context: _Context) -> list[_ServicePort]:
    """(line, index, protocol or None for SCTP, port, nodePort) of each good entry of ``spec.ports``;
    each bad one is a problem of its own, so that one reading reports them all."""
    found: list[_ServicePort] = []
    for index, item in enumerate(_list(spec, "ports")):
        try:
            entries = _entries(item, f"{obj.title} spec.ports[{index}] must be a mapping with 'port'")
            port = _port(entries, "port", item)
            node_port = _port(entries, "nodePort", item) if "nodePort" in entries else None
            found.append((line_of(item), index, _protocol(entries, item), port, node_port))
        except (_Invalid, MappingProblem) as problem:
            context.findings.problem(context.path, problem.line, f"{obj.title}: {problem.message}")
    return found


def _load_balancer(
    obj: _Object,
    spec: Entries,
    ports: list[_ServicePort],
    context: _Context,
) -> None:
    addresses = _status_addresses(obj)
    if not addresses and "loadBalancerIP" in spec:  # the address asked for (deprecated, still honoured)
        requested = spec["loadBalancerIP"][1]
        addresses = [(line_of(requested), _scalar(requested, "an IP")[1])]
    if not addresses and obj.owner in context.addresses:
        addresses = [(line_of(obj.entries["kind"][0]), address) for address in context.addresses[obj.owner]]
    if not addresses:
        _note(
            context,
            line_of(obj.entries["kind"][0]),
            obj,
            f"{obj.title}: the load balancer's address is not in "
            f"the manifest: map {obj.owner} to it to check its ports",
        )
        addresses = [(line_of(obj.entries["kind"][0]), None)]
    ranges = [_scalar(item, "a CIDR") for item in _list(spec, "loadBalancerSourceRanges")]
    peers: list[str | None] = [text for _, text in ranges] or [None]
    for port_line, index, protocol, port, _ in ports:
        for _, address in addresses:
            for peer in peers:
                entry = f"spec.ports[{index}] port {port} on the load balancer" + (
                    f" from {peer}" if peer else ""
                )
                _expose(context, obj, protocol, port, address, peer, port_line, entry)


def _status_addresses(obj: _Object) -> list[tuple[int, str | None]]:
    found: list[tuple[int, str | None]] = []
    node: Node | None = obj.entries.get("status", (None, None))[1]
    for key in ("loadBalancer", "ingress"):
        if is_null(node):
            return found
        assert node is not None
        entries = _entries(node, f"'{key}' must be a mapping")
        node = entries.get(key, (None, None))[1]
    if is_null(node):
        return found
    assert node is not None
    for item in _sequence(node, "'status.loadBalancer.ingress' must be a list"):
        entries = _entries(item, "each load balancer ingress is a mapping with 'ip' or 'hostname'")
        for key in ("ip", "hostname"):
            if key in entries:
                found.append((line_of(item), _scalar(entries[key][1], "an address")[1]))
                break
    return found


# ---- Ingress ----


def _read_ingress(obj: _Object, context: _Context) -> None:
    line = line_of(obj.entries["kind"][0])
    spec_node = obj.entries.get("spec", (None, None))[1]
    spec = {} if is_null(spec_node) else _entries(spec_node, "'spec' must be a mapping")  # type: ignore[arg-type]
    addresses = _status_addresses(obj)
    if not addresses:
        keys = [obj.owner]
        if "ingressClassName" in spec:
            keys.append(f"IngressClass/{_scalar(spec['ingressClassName'][1], 'a class name')[1]}")
        mapped = next((context.addresses[key] for key in keys if key in context.addresses), None)
        if mapped is None:
            _note(
                context,
                line,
                obj,
                f"{obj.title}: the ingress address is not in the manifest: map "
                f"{' or '.join(keys)} to it to check its ports",
            )
            addresses = [(line, None)]
        else:
            addresses = [(line, address) for address in mapped]
    tls = _list(spec, "tls")
    for _, address in addresses:
        _expose(context, obj, Protocol.TCP, 80, address, None, line, "http (80)")
        if tls:
            _expose(context, obj, Protocol.TCP, 443, address, None, line_of(tls[0]), "tls (443)")


# ---- pod templates ----


def _read_workload(obj: _Object, context: _Context) -> None:
    node: Node = obj.entries["kind"][1]
    entries: Entries = obj.entries
    where = ""
    for key in _POD_SPEC_PATHS[obj.kind]:
        where = f"{where}.{key}" if where else key
        if key not in entries or is_null(entries[key][1]):
            return  # no pod spec (e.g. a Deployment template left to a patch): nothing declared
        node = entries[key][1]
        entries = _entries(node, f"{obj.title} {where} must be a mapping")
    host_network = False
    if "hostNetwork" in entries:
        flag = yaml11_bool(entries["hostNetwork"][1])
        if flag is None:
            raise _Invalid(
                line_of(entries["hostNetwork"][1]), f"{obj.title} {where}.hostNetwork must be true or false"
            )
        host_network = flag
    if host_network:
        _note(
            context,
            line_of(entries["hostNetwork"][1]),
            obj,
            f"{obj.title} uses the node's network: it may "
            "listen on node ports its containers do not declare; only the declared ones are read",
        )
    for group in ("initContainers", "containers"):
        for index, container in enumerate(_list(entries, group)):
            centries = _entries(container, f"{obj.title} {where}.{group}[{index}] must be a mapping")
            for pindex, item in enumerate(_list(centries, "ports")):
                label = f"{where}.{group}[{index}].ports[{pindex}]"
                try:
                    _container_port(obj, context, item, label, host_network)
                except (_Invalid, MappingProblem) as problem:
                    context.findings.problem(context.path, problem.line, f"{obj.title}: {problem.message}")


def _container_port(obj: _Object, context: _Context, item: Node, label: str, host_network: bool) -> None:
    entries = _entries(item, f"{obj.title} {label} must be a mapping with 'containerPort'")
    container_port = _port(entries, "containerPort", item)
    host_port = _port(entries, "hostPort", item) if "hostPort" in entries else None
    protocol = _protocol(entries, item)
    if host_network:
        if host_port is not None and host_port != container_port:
            raise _Invalid(
                line_of(item),
                f"{obj.title} {label}: with hostNetwork, hostPort must equal "
                f"containerPort ({container_port}): remove hostPort",
            )
        port, entry = container_port, f"{label} containerPort {container_port} on the node's network"
    elif host_port is not None:
        port, entry = host_port, f"{label} hostPort {host_port}"
    else:
        return
    host_ip = _scalar(entries["hostIP"][1], "an IP")[1] if "hostIP" in entries else None
    bound: tuple[str | None, ...] = (
        (host_ip,) if host_ip not in (None, "", "0.0.0.0", "::") else context.node_addresses
    )
    for address in bound:
        _expose(context, obj, protocol, port, address, None, line_of(item), entry)


# ---- shared ----


def _expose(
    context: _Context,
    obj: _Object,
    protocol: Protocol | None,
    port: int,
    address: str | None,
    peer: str | None,
    line: int,
    entry: str,
) -> None:
    origin = Origin(context.path, line, f"{obj.title} {entry}", obj.owner)
    if protocol is None:
        context.findings.note(origin, "SCTP ports are not checked (only TCP and UDP are)")
        return
    reach = reach_of_peer(peer) if peer is not None else reach_of_bind(address)
    context.findings.exposures.append(Exposure(protocol, port, port, address, reach, peer, origin))


def _note(context: _Context, line: int, obj: _Object, message: str) -> None:
    context.findings.note(Origin(context.path, line, obj.title, obj.owner), message)


def _entries(node: Node, wanted: str) -> Entries:
    if not isinstance(node, MappingNode):
        raise _Invalid(line_of(node), wanted)
    return mapping(node)


def _sequence(node: Node, wanted: str) -> list[Node]:
    if not isinstance(node, SequenceNode):
        raise _Invalid(line_of(node), wanted)
    return list(node.value)


def _list(entries: Entries, key: str) -> list[Node]:
    if key not in entries or is_null(entries[key][1]):
        return []
    return _sequence(entries[key][1], f"'{key}' must be a list")


def _value(entries: Entries, key: str, owner: Node) -> Node:
    if key not in entries or is_null(entries[key][1]):
        raise _Invalid(
            line_of(owner), f"'{key}' is missing: every object needs apiVersion, kind and metadata.name"
        )
    return entries[key][1]


def _text(entries: Entries, key: str, owner: Node) -> str:
    return _scalar(_value(entries, key, owner), f"text for '{key}'")[1]


def _scalar(node: Node, wanted: str) -> tuple[Node, str]:
    if not isinstance(node, ScalarNode):
        raise _Invalid(line_of(node), f"expected {wanted}, found a list or a mapping")
    return node, node.value


def _port(entries: Entries, key: str, owner: Node) -> int:
    node = _value(entries, key, owner) if key in entries else None
    if node is None:
        raise _Invalid(line_of(owner), f"'{key}' is missing: give the port number")
    port = plain_int(node)
    if port is None or not MIN_PORT <= port <= MAX_PORT:
        raise _Invalid(
            line_of(node),
            f"{key} {node.value!r} is not a port number: write a number {MIN_PORT}-{MAX_PORT}, unquoted",
        )
    return port


def _protocol(entries: Entries, owner: Node) -> Protocol | None:
    if "protocol" not in entries:
        return Protocol.TCP
    node, text = _scalar(entries["protocol"][1], "TCP, UDP or SCTP")
    if text == "SCTP":
        return None
    protocol = _PROTOCOLS.get(text)
    if protocol is None:
        raise _Invalid(line_of(node), f"unknown protocol {text!r}: use TCP, UDP or SCTP (upper case)")
    return protocol
