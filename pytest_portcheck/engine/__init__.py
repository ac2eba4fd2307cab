"""The scan engine: targets in, one ``ProbeResult`` per (address, protocol, port) out.

Must not import pytest or YAML, and prints nothing: the plugin and the ``portcheck`` command are
front ends over ``resolve_hosts`` -> ``expand_targets`` -> ``scan``.
"""

from pytest_portcheck.engine.model import (
    DEFAULT_WINDOW,
    AddressQuality,
    PortState,
    ProbeResult,
    Reason,
    Resolution,
    ScanError,
    ScanSettings,
    ScanStats,
    Target,
)
from pytest_portcheck.engine.processes import scan
from pytest_portcheck.engine.resolve import (
    MAX_ADDRESSES_PER_TARGET,
    check_target,
    expand_targets,
    resolve_hosts,
    resolve_one,
)

__all__ = [
    "DEFAULT_WINDOW",
    "MAX_ADDRESSES_PER_TARGET",
    "AddressQuality",
    "PortState",
    "ProbeResult",
    "Reason",
    "Resolution",
    "ScanError",
    "ScanSettings",
    "ScanStats",
    "Target",
    "check_target",
    "expand_targets",
    "resolve_hosts",
    "resolve_one",
    "scan",
]
