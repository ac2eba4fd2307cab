"""``portcheck declared compose|kubernetes|terraform FILE...``: what a source declares, printed as an
inventory to review (``inventory.derived``), each entry commented with the source line declaring it.

Arguments and presentation only; the reading is the sources', the layout ``inventory.derived``'s. A
source problem is exit 2 with every problem on standard error (file, line and fix each), never an
empty inventory. Must not import pytest or the plugin.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from pytest_portcheck.atomicfile import write_text_atomically
from pytest_portcheck.cli.output import check_output
from pytest_portcheck.cli.status import EXIT_OK, EXIT_USAGE
from pytest_portcheck.engine import ScanError
from pytest_portcheck.inventory.declared import SourceRequest, read_source
from pytest_portcheck.inventory.derived import derived_inventory
from pytest_portcheck.inventory.model import check_host_name_syntax
from pytest_portcheck.inventory.sources import SourceError, SourceKind
from pytest_portcheck.ports import PortSpecError, parse_port_spec


def run_declared(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    check_output(args.output)
    try:
        check_host_name_syntax(args.address)
        if args.port_range:
            parse_port_spec(args.port_range)
    except (ScanError, PortSpecError) as exc:
        err.write(f"portcheck: error: {exc}\n")
        return EXIT_USAGE
    kind = SourceKind(args.kind)
    request = SourceRequest(
        kind, tuple(args.files), tuple(args.profile), args.env_file, tuple(args.node_address), args.namespace
    )
    try:
        reading = read_source(request)
    except SourceError as exc:
        for problem in exc.problems:
            err.write(f"portcheck: error: {kind.value} source {problem}\n")
        return EXIT_USAGE
    text = derived_inventory(
        reading,
        address=args.address,
        name=args.name or kind.value,
        port_range=args.port_range,
        command=["portcheck", *getattr(args, "argv", sys.argv[1:])],
    )
    if args.output:
        write_text_atomically(args.output, text)
    else:
        out.write(text)
    return EXIT_OK
