"""The inventory file: YAML in, validated frozen hosts and expectations (``model``) out.

The YAML is composed into nodes so that every value keeps its line (``yamlreader``); validation walks
the nodes to the end, noting each problem (each key, entry and host is checked on its own: the port
lists in ``entries``), and raises one ``InventoryError(path, line, message)`` holding them all, in
file order, each message saying how to fix it. An address is checked by its spelling, never resolved.
Must not import pytest or the probes' I/O.
"""

from __future__ import annotations

import functools
import stat
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import yaml

from pytest_portcheck.engine import ScanError, check_target
from pytest_portcheck.engine.model import MAX_TIMEOUT, MIN_TIMEOUT
from pytest_portcheck.engine.resolve import TargetTooLarge
from pytest_portcheck.inventory.declared import Readings, host_sources
from pytest_portcheck.inventory.entries import flag, list_expectations, vantage_expectations
from pytest_portcheck.inventory.model import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    INVENTORY_VERSION,
    Allowance,
    Expectation,
    HostSpec,
    Inventory,
    InventoryError,
    RangeRule,
    check_host_name_syntax,
)
from pytest_portcheck.inventory.yamlreader import YamlReader
from pytest_portcheck.ports import PortSpecError, Protocol, format_ports, parse_port_spec

# libyaml's parser, where PyYAML was built with it, composes a 10,000-line inventory ~10x faster.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FORBIDDEN_IN_NAMES = ("::", "[", "]", "@", "/")
_TOP_KEYS = ("version", "defaults", "hosts")
_DEFAULT_KEYS = ("timeout", "retries", "max_rate", "min_rate")
_HOST_KEYS = (
    "address", "open", "only_open", "range", "closed", "filtered", "timeout", "retries",
    "silence_counts_as_closed", "max_rate", "min_rate", "from",
)  # fmt: skip


def load_inventory(path: Path | str) -> Inventory:
    """Read and validate an inventory file; raises InventoryError naming the file, the line and the fix."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise InventoryError(path, 0, "is a directory: give the inventory YAML file in it")
        if not stat.S_ISREG(mode):  # reading a FIFO would wait for a writer, maybe forever
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
            raise InventoryError(path, 0, f"is {kind}, not a regular file: give the inventory YAML file")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InventoryError(path, 0, "no such file: check the path given to --portcheck") from None
    except OSError as exc:
        raise InventoryError(path, 0, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InventoryError(
            path, line, f"not UTF-8 (byte 0x{raw[exc.start]:02x}): save the file as UTF-8"
        ) from None
    return parse_inventory(text, path)


def parse_inventory(text: str, path: Path) -> Inventory:
    """Validate the whole file; InventoryError with every problem found, in file order, when any."""
    reader = YamlReader(path)
    inventory = reader.attempt(None, _parse, reader, text, path)
    if reader.problems:
        # Stable: problems on one line keep the order they were found in (the cause first).
        raise InventoryError.all_of(sorted(reader.problems, key=lambda problem: problem.line))
    assert inventory is not None
    return inventory


def _parse(reader: YamlReader, text: str, path: Path) -> Inventory:
    try:
        root = yaml.compose(text, Loader=_SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or exc.context or "invalid YAML"
        raise InventoryError(path, line, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(path, 0, f"invalid YAML: {exc}") from None
    if root is None:
        raise InventoryError(path, 0, "the inventory is empty: declare at least one host under 'hosts:'")
    noted = len(reader.problems)
    top = reader.mapping(root, "the inventory", _TOP_KEYS)
    misspelt_top = len(reader.problems) > noted  # e.g. 'host:': "no hosts" would repeat it
    if "version" in top:
        _key, value_node = top["version"]
        version = reader.scalar(value_node)
        if isinstance(version, bool) or version != INVENTORY_VERSION:
            raise reader.error(
                value_node, f"unsupported version: this plugin reads version {INVENTORY_VERSION}"
            )
    timeout, retries = DEFAULT_TIMEOUT, DEFAULT_RETRIES
    rates: _Rates = (None, None)
    if "defaults" in top:
        defaults = reader.attempt({}, reader.mapping, top["defaults"][1], "defaults", _DEFAULT_KEYS)
        timing = (timeout, retries)
        timeout, retries = reader.attempt(timing, _timing, reader, defaults, timeout, retries, "defaults")
        rates = reader.attempt(rates, _rates, reader, defaults, rates, "defaults")
    if "hosts" not in top:
        if not misspelt_top:  # noted, not raised: a problem in defaults above is reported too
            reader.note(root, "no 'hosts:' section: declare the hosts to check")
        return Inventory(path, ())
    hosts_node = top["hosts"][1]
    if isinstance(hosts_node, yaml.ScalarNode) and reader.scalar(hosts_node) is None:
        raise reader.error(hosts_node, "'hosts:' is empty: declare at least one host")
    hosts = reader.mapping(hosts_node, "hosts", ())
    if not hosts:
        raise reader.error(hosts_node, "'hosts:' is empty: declare at least one host")
    specs: list[HostSpec] = []
    readings: Readings = {}  # each source read once a load, whichever hosts read it
    for name, (key_node, value_node) in hosts.items():
        # Every host is checked, each to its end: a file with several problems reports them all at once.
        spec = reader.attempt(
            None, _host, reader, name, key_node, value_node, timeout, retries, rates, readings
        )
        if spec is not None:
            specs.append(spec)
    return Inventory(path, tuple(specs))


def _timing(
    reader: YamlReader,
    entries: dict[str, tuple[yaml.Node, yaml.Node]],
    timeout: float,
    retries: int,
    where: str,
) -> tuple[float, int]:
    if "timeout" in entries:
        node = entries["timeout"][1]
        timeout = reader.number(node, f"timeout in {where}", integer=False, minimum=0, above=True)
        if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
            bounds = f"{MIN_TIMEOUT:g} to {MAX_TIMEOUT:g} seconds"
            raise reader.error(node, f"timeout in {where} must be {bounds}, not {timeout!r}")
    if "retries" in entries:
        retries = int(
            reader.number(entries["retries"][1], f"retries in {where}", integer=True, minimum=0, above=False)
        )
    return timeout, retries


_Rates = tuple[float | None, float | None]


def _rates(
    reader: YamlReader, entries: dict[str, tuple[yaml.Node, yaml.Node]], rates: _Rates, where: str
) -> _Rates:
    """``max_rate`` / ``min_rate`` (TCP probes per second), as nmap's --max-rate / --min-rate."""
    found = list(rates)
    for index, key in enumerate(("max_rate", "min_rate")):
        if key in entries:
            found[index] = reader.number(
                entries[key][1],
                f"{key} in {where}",
                integer=False,
                minimum=0,
                above=True,
                unit="probes per second",
            )
    high, low = found
    if high is not None and low is not None and low > high:
        node = entries.get("min_rate", entries.get("max_rate"))
        line = node[1].start_mark.line + 1 if node is not None else 1
        raise InventoryError(
            reader.path, line, f"min_rate ({low:g}) is above max_rate ({high:g}) in {where}: lower min_rate"
        )
    return high, low


def _host(
    reader: YamlReader,
    name: str,
    key_node: yaml.Node,
    node: yaml.Node,
    timeout: float,
    retries: int,
    rates: _Rates = (None, None),
    readings: Readings | None = None,
) -> HostSpec:
    """One host, checked to its end: each problem is noted (``YamlReader.attempt``) and the next key or
    entry still checked; only a host that is not a mapping at all stops here."""
    noted = len(reader.problems)
    bad_name = not name.strip() or any(piece in name for piece in _FORBIDDEN_IN_NAMES) or name != name.strip()
    if bad_name:
        reader.note(
            key_node,
            f"host name {name!r} cannot be used in test ids: avoid spaces at the ends and "
            f"{' '.join(_FORBIDDEN_IN_NAMES)}; put the address under 'address:'",
        )
    if isinstance(node, yaml.ScalarNode) and reader.scalar(node) is None:
        raise reader.error(key_node, f"host {name!r} declares nothing: add open:, closed: or filtered: ports")
    where = f"host {name!r}"
    entries = reader.mapping(node, where, _HOST_KEYS)
    address = name
    if "address" in entries or not bad_name:  # a refused name is not checked again as an address
        address = reader.attempt(name, _host_address, reader, name, key_node, entries)
    timeout, retries = reader.attempt((timeout, retries), _timing, reader, entries, timeout, retries, where)
    rates = reader.attempt(rates, _rates, reader, entries, rates, where)
    if "open" in entries and "only_open" in entries:
        reader.note(entries["only_open"][0], f"{where} has both open: and only_open:: keep one")
    if "range" in entries and "only_open" not in entries:
        reader.note(entries["range"][0], "range: goes with only_open:, which it bounds")
    host_silence = False
    if "silence_counts_as_closed" in entries:
        silence_node = entries["silence_counts_as_closed"][1]
        host_silence = reader.attempt(False, flag, reader, silence_node, "silence_counts_as_closed")
    sources = host_sources(reader.path, address, {} if readings is None else readings)
    expectations = list_expectations(reader, name, entries, host_silence, sources)
    if "from" in entries:
        from_node = entries["from"][1]
        expectations += reader.attempt(
            [], vantage_expectations, reader, name, from_node, host_silence, sources
        )
    allowed = tuple(sources.allowances)
    rule = None
    if "only_open" in entries:
        rule = reader.attempt(None, _range_rule, reader, name, entries, expectations, host_silence, allowed)
        if rule is not None and sources.paths:
            rule = replace(rule, declared_by=tuple(sources.paths))
    if (
        not expectations and rule is None and not allowed and len(reader.problems) == noted
    ):  # else: their consequence
        raise reader.error(
            key_node, f"host {name!r} declares no ports: add open:, closed: or filtered: entries"
        )
    line = key_node.start_mark.line + 1
    notes = sources.all_notes()
    return HostSpec(name, address, timeout, retries, tuple(expectations), line, rule, *rates, notes, allowed)


def _host_address(
    reader: YamlReader, name: str, key_node: yaml.Node, entries: Mapping[str, tuple[yaml.Node, yaml.Node]]
) -> str:
    """The host's address (its name when it gives none), checked by spelling only: never resolved here."""
    address = name
    if "address" in entries:
        value = reader.scalar(entries["address"][1])
        if not isinstance(value, str) or not value.strip():
            raise reader.error(entries["address"][1], f"address of {name!r} must be a hostname or IP address")
        address = value.strip()
    try:
        check_target(address)
        check_host_name_syntax(address)
    except ScanError as exc:
        node = entries["address"][1] if "address" in entries else key_node
        raise reader.error(node, _address_problem(exc)) from None
    return address


def _address_problem(exc: ScanError) -> str:
    """The spelling check's message, with the fix an inventory offers (it has no --allow-large-targets)."""
    if isinstance(exc, TargetTooLarge):
        return (
            f"{exc} into hosts of at most {exc.limit:,} addresses each "
            "(--allow-large-targets is for 'portcheck scan', not inventories)"
        )
    return str(exc)


def _range_rule(
    reader: YamlReader,
    name: str,
    entries: dict[str, tuple[yaml.Node, yaml.Node]],
    expectations: list[Expectation],
    silence_counts_as_closed: bool,
    allowed: tuple[Allowance, ...] = (),
) -> RangeRule:
    """The rest of ``range`` after the ports the host declares (each has its own item, which
    judges it at least as strictly): nothing there may be open."""
    spec, node = "1-65535/tcp", entries["only_open"][0]
    if "range" in entries:
        node = entries["range"][1]
        value = reader.scalar(node)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise reader.error(node, f'range must be a port spec like "1-65535/tcp", not {value!r}')
        spec = str(value)
    # A port declared under from: is judged from its vantage only: the range still covers it elsewhere.
    listed = frozenset((e.proto, e.port) for e in expectations if e.vantage is None) | frozenset(
        (a.proto, port) for a in allowed if a.vantage is None for port in range(a.first, a.last + 1)
    )
    try:
        proto, rest, label = _range_rest(spec, listed)
    except PortSpecError as exc:
        raise reader.error(node, str(exc)) from None
    except ValueError:
        raise reader.error(
            node, "range must cover one protocol: write one only_open host per protocol"
        ) from None
    return RangeRule(name, proto, rest, label, node.start_mark.line + 1, silence_counts_as_closed)


@functools.lru_cache(maxsize=64)
def _range_rest(spec: str, listed: frozenset[tuple[Protocol, int]]) -> tuple[Protocol, tuple[int, ...], str]:
    """(protocol, the range minus the listed ports, label), computed once per distinct range: a fleet
    of hosts with one full range then shares one tuple instead of holding 65,535 ports each."""
    keys = parse_port_spec(spec)
    protocols = {proto for proto, _ in keys}
    if len(protocols) != 1:
        raise ValueError("more than one protocol")
    rest = tuple(port for proto, port in keys if (proto, port) not in listed)
    proto = protocols.pop()
    return proto, rest, f"{proto.value}/{format_ports(port for _, port in keys)}"
