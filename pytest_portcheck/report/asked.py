"""What a protocol probe was run for: the requirements a report records per probed port (``asked``).

A probe answers the requirements it was run for (a TLS floor is tried with a handshake capped below it,
verification under the name asked for), so both report versions record them, and a judge of another
inventory, or of a plain report, tells "not probed for this" from a pass (``sharding.vantages``).
Must not import pytest, yaml or the probes: the judge reads reports without them. Not loaded by a plain
``portcheck scan`` (``ipaddress`` costs start-up).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from pytest_portcheck.report.model import Asked

if TYPE_CHECKING:
    from pytest_portcheck.inventory.model import ServiceRequirement


def probe_name(host: str) -> str | None:
    """The name a probe of ``host`` asked for (SNI, verification), None for an address."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    return None


def asked_of(wanted: ServiceRequirement, name: str | None) -> Asked:
    """A service requirement as a report records what a probe was run for."""
    tls = wanted.tls
    if tls is None:
        return (wanted.service, None, False, None, wanted.auth, name)
    return (wanted.service, tls.min_version, tls.verify, tls.expires_in_days, wanted.auth, name)
