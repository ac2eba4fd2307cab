"""Inventory sources: the exposure that Compose files, Kubernetes manifests and Terraform plans declare.

Each reader takes files and returns a ``SourceReading``: the declared exposures (protocol, ports,
address, who may reach them, and the entry that declares them, with its line), notes on what is
declared but cannot be checked, or a ``SourceError`` holding every problem of the files at once.
Readers read files only: no network, no scanning, no pytest.
Must not import pytest, the plugin, the engine or the probes.
"""

from __future__ import annotations

from pytest_portcheck.inventory.sources.compose import read_compose
from pytest_portcheck.inventory.sources.kubernetes import read_kubernetes
from pytest_portcheck.inventory.sources.model import (
    Exposure,
    Note,
    Origin,
    Reach,
    SourceError,
    SourceKind,
    SourceReading,
)
from pytest_portcheck.inventory.sources.terraform import read_terraform

__all__ = [
    "Exposure",
    "Note",
    "Origin",
    "Reach",
    "SourceError",
    "SourceKind",
    "SourceReading",
    "read_compose",
    "read_kubernetes",
    "read_terraform",
]
