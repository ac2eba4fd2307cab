"""Docker Compose files: the host ports their services publish.

Reads the Compose Specification as Compose v2 does: ``ports`` in short syntax
(``[HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]``, ranges, ``[::1]``) and long syntax (``target``,
``published`` as a number, a string or a range, ``host_ip``, ``protocol``, ``mode``); variables
(see ``interpolation``) from a ``.env`` file next to the first file (or ``env_file``) and an
explicit environment on top, never this process's; several files merged in order (services by
name, ``ports`` as a union keyed by host IP, published, target and protocol, ``!reset`` and
``!override`` honoured; ``profiles`` and ``network_mode`` as Compose merges them); services in a
profile only when it is enabled. Every entry keeps its line; an unquoted ``22:22`` is read as the
text v2 reads, not as YAML 1.1's base-60 number. Only the keys above are interpreted: other keys
are neither checked nor interpolated.
Imports only the standard library, PyYAML (through ``yamlnodes``), ``pytest_portcheck.ports`` and
this package.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pytest_portcheck.inventory.sources.interpolation import InterpolationProblem, interpolate, parse_env_file
from pytest_portcheck.inventory.sources.model import (
    Exposure,
    Findings,
    Origin,
    SourceError,
    SourceKind,
    SourceReading,
    reach_of_bind,
)
from pytest_portcheck.inventory.sources.yamlnodes import (
    MappingProblem,
    YamlProblem,
    compose_documents,
    is_null,
    is_plain,
    is_sexagesimal,
    line_of,
    mapping,
    paused_gc,
)
from pytest_portcheck.ports import MAX_PORT, MIN_PORT, Protocol

_LONG_KEYS = frozenset(("target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"))
_PROTOCOLS = {"tcp": Protocol.TCP, "udp": Protocol.UDP}
_UNCHECKED_PROTOCOLS = frozenset(("sctp",))
_UNSUPPORTED_SERVICE_KEYS = ("extends",)
_UNSUPPORTED_TOP_KEYS = ("include",)

Span = tuple[int, int]


class _EntryProblem(ValueError):
    """A port entry that cannot be read; the message says how to write it."""


@dataclass(frozen=True, slots=True)
class _PortEntry:
    host_ip: str | None
    published: Span | None
    target: Span
    protocol: str
    origin: Origin

    @property
    def key(self) -> tuple[str | None, Span | None, Span, str]:
        # Compose's merge key for ports: the same mapping declared in two files is one port.
        return (self.host_ip, self.published, self.target, self.protocol)


@dataclass(slots=True)
class _Service:
    name: str
    origin: Origin
    ports: dict[tuple[str | None, Span | None, Span, str], _PortEntry] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)
    network_mode: tuple[str, Origin] | None = None


def read_compose(
    paths: Sequence[str | os.PathLike[str]],
    *,
    profiles: Iterable[str] = (),
    environment: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | None = None,
) -> SourceReading:
    """The host ports a Compose project publishes, as ``docker compose -f A -f B config`` sees them.

    ``profiles`` are the enabled profiles (``*`` enables all; none given: ``COMPOSE_PROFILES``,
    comma-separated, from the variables); ``environment`` is laid over the ``.env`` file
    (``env_file`` replaces the one next to the first file). Raises ``SourceError``
    with every problem of every file."""
    names = [os.fspath(path) for path in paths]
    if not names:
        raise SourceError("<compose>", 0, "no Compose file given: name at least one file")
    findings = Findings()
    env = _environment(names[0], env_file, environment or {}, findings)
    services: dict[str, _Service] = {}
    declared_services = False
    with paused_gc():
        for name in names:
            declared_services |= _read_file(name, env, services, findings)
    if not declared_services:
        if not findings.problems:  # a file that did not parse is the problem, not its missing services
            findings.problem(names[0], 0, "declares no services: a Compose file needs a 'services:' mapping")
    else:
        # As Compose does: the profiles asked for, else COMPOSE_PROFILES from .env or the environment.
        enabled = frozenset(profiles) or frozenset(
            name.strip() for name in env.get("COMPOSE_PROFILES", "").split(",") if name.strip()
        )
        _declare(services, enabled, names, findings)
    return findings.reading(SourceKind.COMPOSE, names)


def _environment(
    first: str, env_file: str | os.PathLike[str] | None, given: Mapping[str, str], findings: Findings
) -> dict[str, str]:
    path = os.fspath(env_file) if env_file is not None else os.path.join(os.path.dirname(first), ".env")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        if env_file is not None:
            findings.problem(path, 0, "the env file does not exist: check the path")
        return dict(given)
    except (OSError, UnicodeDecodeError) as error:
        findings.problem(path, 0, f"cannot read the env file ({error}): make it a readable UTF-8 file")
        return dict(given)
    values, problems = parse_env_file(text, given)
    for line, message in problems:
        findings.problem(path, line, message)
    return {**values, **given}


def _read_file(path: str, env: Mapping[str, str], services: dict[str, _Service], findings: Findings) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        findings.problem(path, 0, "the Compose file does not exist: check the path")
        return False
    except (OSError, UnicodeDecodeError) as error:
        findings.problem(path, 0, f"cannot read the Compose file ({error}): make it a readable UTF-8 file")
        return False
    try:
        documents = list(compose_documents(text))
    except YamlProblem as problem:
        findings.problem(
            path, problem.line, f"not valid YAML ({problem.message}): fix the syntax at this line"
        )
        return False
    if len(documents) > 1:
        findings.problem(path, 0, f"holds {len(documents)} YAML documents: a Compose file is one document")
        return False
    root = documents[0] if documents else None
    if is_null(root):
        return False
    entries = _mapping_or_problem(root, path, findings, "a Compose file must be a mapping with 'services:'")
    if entries is None:
        return False
    for key in _UNSUPPORTED_TOP_KEYS:
        if key in entries:
            findings.problem(
                path, line_of(entries[key][0]),
                f"'{key}' is not read here: merge the included files by naming each of them",
            )  # fmt: skip
    if "services" not in entries:
        return False
    services_node = entries["services"][1]
    if is_null(services_node):
        return False
    declared = _mapping_or_problem(services_node, path, findings, "'services' must be a mapping of services")
    if declared is None:
        return False
    for name, (key_node, node) in declared.items():
        service = services.get(name)
        if service is None or node.tag == "!reset":
            service = services[name] = _Service(
                name, Origin(path, line_of(key_node), f"service {name}", name)
            )
        if not is_null(node):
            _read_service(service, node, path, env, findings)
    return bool(declared)


def _mapping_or_problem(
    node: Node | None, path: str, findings: Findings, wanted: str
) -> dict[str, tuple[ScalarNode, Node]] | None:
    if not isinstance(node, MappingNode):
        findings.problem(path, line_of(node) if node is not None else 0, wanted)
        return None
    try:
        return mapping(node)
    except MappingProblem as problem:
        findings.problem(path, problem.line, problem.message)
        return None


def _read_service(
    service: _Service, node: Node, path: str, env: Mapping[str, str], findings: Findings
) -> None:
    where = f"service {service.name}"
    entries = _mapping_or_problem(node, path, findings, f"{where} must be a mapping of its settings")
    if entries is None:
        return
    for key in _UNSUPPORTED_SERVICE_KEYS:
        if key in entries:
            findings.problem(
                path, line_of(entries[key][0]),
                f"{where}: '{key}' is not read here, so its ports would be missed: "
                "copy the extended service's ports into this service",
            )  # fmt: skip
    if "profiles" in entries:
        _read_profiles(service, entries["profiles"][1], path, env, findings)
    if "network_mode" in entries:
        _read_network_mode(service, entries["network_mode"][1], path, env, findings)
    if "ports" in entries:
        _read_ports(service, entries["ports"][1], path, env, findings)


def _read_profiles(
    service: _Service, node: Node, path: str, env: Mapping[str, str], findings: Findings
) -> None:
    if node.tag in ("!reset", "!override") or is_null(node):
        service.profiles = []
    if is_null(node):
        return
    if not isinstance(node, SequenceNode) or not all(isinstance(item, ScalarNode) for item in node.value):
        findings.problem(path, line_of(node), f"service {service.name}: 'profiles' must be a list of names")
        return
    for item in node.value:
        try:
            name = interpolate(item.value, env)
        except InterpolationProblem as problem:
            findings.problem(path, line_of(item), f"service {service.name} profiles: {problem}")
            continue
        if name not in service.profiles:
            service.profiles.append(name)


def _read_network_mode(
    service: _Service, node: Node, path: str, env: Mapping[str, str], findings: Findings
) -> None:
    if is_null(node) or node.tag == "!reset":
        service.network_mode = None
        return
    if not isinstance(node, ScalarNode):
        findings.problem(
            path, line_of(node), f"service {service.name}: 'network_mode' must be text such as 'host'"
        )
        return
    try:
        mode = interpolate(node.value, env)
    except InterpolationProblem as problem:
        findings.problem(path, line_of(node), f"service {service.name} network_mode: {problem}")
        return
    origin = Origin(path, line_of(node), f"service {service.name} network_mode {mode!r}", service.name)
    service.network_mode = (mode, origin)


def _read_ports(service: _Service, node: Node, path: str, env: Mapping[str, str], findings: Findings) -> None:
    if node.tag in ("!reset", "!override"):
        service.ports = {}
    if is_null(node):
        return
    if not isinstance(node, SequenceNode):
        findings.problem(
            path, line_of(node),
            f"service {service.name}: 'ports' must be a list, e.g. ports: [\"8080:80\"]",
        )  # fmt: skip
        return
    for index, item in enumerate(node.value):
        try:
            entry = _port_entry(service.name, index, item, path, env, findings)
        except (_EntryProblem, InterpolationProblem) as problem:
            findings.problem(path, line_of(item), f"service {service.name} ports[{index}]: {problem}")
            continue
        service.ports.pop(entry.key, None)  # a later file's same port replaces it, as Compose merges
        service.ports[entry.key] = entry


def _port_entry(
    service: str, index: int, node: Node, path: str, env: Mapping[str, str], findings: Findings
) -> _PortEntry:
    line = line_of(node)
    if isinstance(node, ScalarNode):
        if is_null(node):
            raise _EntryProblem('the entry is empty: write a port such as "8080:80" or remove it')
        _refuse_leading_zero(node)
        text = interpolate(node.value, env)
        origin = Origin(path, line, f'service {service} ports[{index}] "{node.value}"', service)
        if is_sexagesimal(node):
            findings.note(
                origin,
                f"unquoted {node.value} is the base-60 number {_base60(node.value)} to YAML 1.1 readers "
                f"(docker-compose 1.x publishes container port {_base60(node.value)} on a random host port); "
                f'read as Compose v2 does, as the text "{node.value}": quote it',
            )
        host_ip, published, target, protocol = _short_syntax(text)
        return _PortEntry(host_ip, published, target, protocol, origin)
    if isinstance(node, MappingNode):
        return _long_syntax(service, index, node, path, env)
    raise _EntryProblem('a port entry is text ("8080:80") or a mapping (target: 80), not a list')


def _base60(text: str) -> int:
    value = 0
    for part in text.lstrip("+-").replace("_", "").split(":"):
        value = value * 60 + int(part)
    return -value if text.startswith("-") else value


def _refuse_leading_zero(node: ScalarNode) -> None:
    if is_plain(node) and node.value.isdigit() and len(node.value) > 1 and node.value.startswith("0"):
        raise _EntryProblem(
            f"unquoted {node.value} is an octal number to YAML 1.1 readers: drop the leading zero or quote it"
        )


def _short_syntax(text: str) -> tuple[str | None, Span | None, Span, str]:
    spec, slash, protocol = text.strip().rpartition("/")
    if not slash:
        spec, protocol = protocol, "tcp"
    if spec.startswith("["):
        inside, bracket, rest = spec[1:].partition("]")
        if not bracket or not rest.startswith(":") or rest.count(":") != 2:
            raise _EntryProblem(f'cannot read {text!r}: an IPv6 host address is written "[::1]:8080:80"')
        raw_ip: str | None = inside
        published_text, target_text = rest[1:].split(":")
    else:
        parts = spec.split(":")
        target_text = parts[-1]
        published_text = parts[-2] if len(parts) >= 2 else ""
        raw_ip = ":".join(parts[:-2]) if len(parts) >= 3 else None
    host_ip = _host_ip(raw_ip, text)
    target = _span(target_text, text, "container port")
    published = _span(published_text, text, "host port") if published_text.strip() else None
    return host_ip, published, target, protocol.strip().lower()


def _host_ip(raw: str | None, text: str) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return str(ipaddress.ip_address(raw.strip().strip("[]")))
    except ValueError:
        raise _EntryProblem(
            f"{raw!r} in {text!r} is not an IP address: bind to an address like 127.0.0.1 or [::1]"
        ) from None


def _span(text: str, whole: str, side: str) -> Span:
    low_text, dash, high_text = text.strip().partition("-")
    low = _port_number(low_text, whole, side)
    high = _port_number(high_text, whole, side) if dash else low
    if low > high:
        raise _EntryProblem(f"the {side} range {text!r} in {whole!r} is reversed: write {high}-{low}")
    return low, high


def _port_number(text: str, whole: str, side: str) -> int:
    text = text.strip()
    if not text.isdigit() or not text.isascii():
        raise _EntryProblem(
            f"{text!r} in {whole!r} is not a {side}: write [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL], "
            'e.g. "127.0.0.1:8080:80/tcp"'
        )
    port = int(text)
    if not MIN_PORT <= port <= MAX_PORT:
        raise _EntryProblem(f"{side} {port} in {whole!r} is out of range: ports are {MIN_PORT}-{MAX_PORT}")
    return port


def _long_syntax(
    service: str, index: int, node: MappingNode, path: str, env: Mapping[str, str]
) -> _PortEntry:
    try:
        entries = mapping(node)
    except MappingProblem as problem:
        raise _EntryProblem(problem.message) from None
    unknown = [key for key in entries if key not in _LONG_KEYS and not key.startswith("x-")]
    if unknown:
        raise _EntryProblem(
            f"unknown key {unknown[0]!r} in a long-syntax port: use {', '.join(sorted(_LONG_KEYS))}"
        )
    values: dict[str, str] = {}
    for key, (_, value_node) in entries.items():
        if is_null(value_node):
            continue
        if not isinstance(value_node, ScalarNode):
            raise _EntryProblem(f"'{key}' must be a single value, not a list or a mapping")
        _refuse_leading_zero(value_node)
        values[key] = interpolate(value_node.value, env)
    if "target" not in values:
        raise _EntryProblem("a long-syntax port needs 'target' (the container port)")
    shown = ", ".join(
        f"{key}: {values[key]}" for key in ("host_ip", "published", "target", "protocol") if key in values
    )
    origin = Origin(path, line_of(node), f"service {service} ports[{index}] {{{shown}}}", service)
    whole = "{" + shown + "}"
    target = _span(values["target"], whole, "container port")
    if target[0] != target[1]:
        raise _EntryProblem(
            f"'target' is one container port, not {values['target']!r}: list one entry a port"
        )
    published = (
        _span(values["published"], whole, "host port") if values.get("published", "").strip() else None
    )
    host_ip = _host_ip(values.get("host_ip"), whole)
    return _PortEntry(host_ip, published, target, values.get("protocol", "tcp").strip().lower(), origin)


def _declare(
    services: dict[str, _Service], enabled: frozenset[str], paths: Sequence[str], findings: Findings
) -> None:
    active = 0
    for service in services.values():
        if service.profiles and "*" not in enabled and not enabled.intersection(service.profiles):
            findings.note(
                service.origin,
                f"service {service.name} is in profile(s) {', '.join(service.profiles)}, none enabled: "
                "its ports are not declared",
            )
            continue
        active += 1
        _declare_service(service, findings)
    if services and not active:
        findings.problem(
            paths[0], 0,
            "no service is active: every service is in a profile that is not enabled; enable one "
            f"(profiles: {', '.join(sorted({p for s in services.values() for p in s.profiles}))})",
        )  # fmt: skip


def _declare_service(service: _Service, findings: Findings) -> None:
    if service.network_mode is not None:
        mode, origin = service.network_mode
        if mode == "host":
            findings.note(
                origin,
                f"service {service.name} uses the host's network: it listens on the host's own ports, "
                "which this file does not declare (Docker ignores its 'ports', and 'expose' publishes "
                "nothing); list them in the inventory",
            )
            return
        if mode == "none" or mode.startswith(("service:", "container:")):
            if service.ports:
                findings.problem(
                    origin.path, origin.line,
                    f"service {service.name}: network_mode {mode!r} cannot publish ports: "
                    "publish them on the service whose network it uses, or remove 'ports'",
                )  # fmt: skip
            return
    if not service.ports:
        findings.note(service.origin, f"service {service.name} publishes no port")
        return
    for entry in service.ports.values():
        _declare_entry(service.name, entry, findings)


def _declare_entry(service: str, entry: _PortEntry, findings: Findings) -> None:
    origin = entry.origin
    protocol = _PROTOCOLS.get(entry.protocol)
    if protocol is None:
        if entry.protocol in _UNCHECKED_PROTOCOLS:
            findings.note(origin, f"{entry.protocol} ports are not checked (only tcp and udp are)")
        else:
            findings.problem(
                origin.path, origin.line,
                f"service {service}: unknown protocol {entry.protocol!r}: use tcp or udp (or sctp)",
            )  # fmt: skip
        return
    target_low, target_high = entry.target
    container = f"{target_low}" if target_low == target_high else f"{target_low}-{target_high}"
    if entry.published is None:
        findings.note(
            origin,
            f"container port {container}/{protocol} is published on a random host port: it cannot be "
            'checked; give a host port ("8080:80")',
        )
        return
    low, high = entry.published
    target_count, host_count = target_high - target_low + 1, high - low + 1
    if host_count != target_count and target_count != 1:
        findings.problem(
            origin.path, origin.line,
            f"service {service}: the host range {low}-{high} has {host_count} ports and the container range "
            f"{container} has {target_count}: give both sides the same length",
        )  # fmt: skip
        return
    reach = reach_of_bind(entry.host_ip)
    findings.exposures.append(
        Exposure(protocol, low, high, entry.host_ip, reach, None, origin, one_of=host_count > target_count)
    )
