"""Benchmark of the source readers: a Compose file of 1k/5k/10k services, a manifest of 1k/5k/10k
Kubernetes objects (and, for reference, a Terraform plan of as many rules). Does reading grow linearly,
and does a 5,000-service Compose file / a 10,000-object manifest stay under 1 s?

    python benchmarks/bench_sources.py [--runs 3] [--sizes 1000,5000,10000] [--no-pytest]

Then, through pytest (``--no-pytest`` skips it): ``pytest --portcheck INVENTORY --collect-only`` of
an inventory that reads the 5,000-service Compose file (and one that reads the 10,000-object manifest)
against the same inventory with the ports it derives written out by hand, side by side in separate
processes: the difference is what reading the source adds to a run (collection is where it is read;
the scan of the same ports is the same either way, and sends nothing here).

Generates the files into a temporary folder (no network traffic) and times, in this process, the
real readers against a baseline measured in the same run: PyYAML's own ``load`` with the C loader
(``json.load`` for Terraform) of the same file, which builds plain values and knows no lines.
Prints the median time, the time per entry, its ratio to the smallest size (a linear reader stays
near 1.0) and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from pytest_portcheck.inventory.load import load_inventory
from pytest_portcheck.inventory.sources import read_compose, read_kubernetes, read_terraform

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
GOALS = {("compose", 5000): 1.0, ("kubernetes", 10000): 1.0}


def compose_file(folder: Path, size: int) -> Path:
    """``size`` services, each publishing three ports (one short, one with a host IP, one long)."""
    lines = ["services:"]
    for index in range(size):
        port = 1024 + index * 3 % 60000
        lines += [
            f"  svc{index}:",
            f"    image: registry.example.com/app{index % 17}:1.{index % 9}",
            "    environment:",
            f"      ROLE: worker{index % 5}",
            "    ports:",
            f'      - "{port}:80"',
            f'      - "127.0.0.1:{port + 1}:9100/udp"',
            f"      - target: 443\n        published: {port + 2}\n        protocol: tcp",
        ]
    path = folder / f"compose-{size}.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def kubernetes_file(folder: Path, size: int) -> Path:
    """``size`` objects: Services (NodePort) and Deployments with a host port, alternately."""
    documents = []
    for index in range(size):
        if index % 2:
            documents.append(
                f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc{index}\n  namespace: ns{index % 7}\n"
                f"  labels:\n    app: app{index}\nspec:\n  type: NodePort\n  selector:\n    app: app{index}\n"
                f"  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n"
                f"      nodePort: {30000 + index % 2768}\n      protocol: TCP\n"
            )
        else:
            documents.append(
                f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{index}\n"
                f"spec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: app{index}\n"
                f"  template:\n    metadata:\n"
                f"      labels:\n        app: app{index}\n    spec:\n      containers:\n        - name: app\n"
                f"          image: registry.example.com/app:{index % 9}\n          ports:\n"
                f"            - containerPort: 8080\n              hostPort: {1024 + index % 60000}\n"
                f"          env:\n            - name: ROLE\n              value: worker{index % 5}\n"
            )
    path = folder / f"manifest-{size}.yaml"
    path.write_text("---\n".join(documents))
    return path


def terraform_file(folder: Path, size: int) -> Path:
    """``size`` aws_security_group_rule resources, pretty-printed as ``terraform show -json | jq``."""
    resources = [
        {
            "address": f"aws_security_group_rule.r{index}",
            "mode": "managed",
            "type": "aws_security_group_rule",
            "name": f"r{index}",
            "provider_name": "registry.terraform.io/hashicorp/aws",
            "schema_version": 2,
            "values": {
                "type": "ingress",
                "protocol": "tcp",
                "from_port": 1024 + index % 60000,
                "to_port": 1024 + index % 60000,
                "cidr_blocks": [f"10.{index % 256}.0.0/16"],
                "security_group_id": f"sg-{index:08x}",
                "self": False,
            },
            "sensitive_values": {},
        }
        for index in range(size)
    ]
    plan = {"format_version": "1.2", "planned_values": {"root_module": {"resources": resources}}}
    path = folder / f"plan-{size}.json"
    path.write_text(json.dumps(plan, indent=2))
    return path


def interleaved_medians(actions: list[Callable[[], object]], runs: int) -> list[float]:
    """The median time of each action, run in turns so that a busy machine slows them alike."""
    times: list[list[float]] = [[] for _ in actions]
    for _ in range(runs):
        for index, action in enumerate(actions):
            start = time.perf_counter()
            action()
            times[index].append(time.perf_counter() - start)
    return [statistics.median(each) for each in times]


Reader = Callable[[Path], object]
KINDS: dict[str, tuple[Callable[[Path, int], Path], Reader, Reader]] = {
    "compose": (
        compose_file,
        lambda path: read_compose([path]),
        lambda path: yaml.load(path.read_text(), Loader=_Loader),
    ),
    "kubernetes": (
        kubernetes_file,
        lambda path: read_kubernetes([path], node_addresses=["10.0.0.1"]),
        lambda path: list(yaml.load_all(path.read_text(), Loader=_Loader)),
    ),
    "terraform": (terraform_file, read_terraform, lambda path: json.loads(path.read_text())),
}


def measure(kind: str, folder: Path, sizes: list[int], runs: int) -> list[str]:
    """Print one line a size; return the goals missed."""
    generate, read, baseline = KINDS[kind]
    missed = []
    first_per_entry = None
    for size in sizes:
        path = generate(folder, size)
        reading = read(path)
        assert getattr(reading, "exposures", None), f"{kind} {size}: nothing declared"
        read_time, base_time = interleaved_medians([lambda: read(path), lambda: baseline(path)], runs)  # noqa: B023
        per_entry = read_time / size
        first_per_entry = first_per_entry or per_entry
        print(
            f"{kind:<11} {size:>8,} {read_time:>8.3f}s {per_entry * 1e6:>9.1f}µs "
            f"{per_entry / first_per_entry:>12.2f} {base_time:>8.3f}s {read_time / base_time:>6.2f}"
        )
        goal = GOALS.get((kind, size))
        if goal is not None and read_time > goal:
            missed.append(f"{kind} at {size:,}: {read_time:.3f} s > {goal} s")
    return missed


PYTEST_CASES = {"compose": (5000, "{compose: FILE}"), "kubernetes": (10000, "{kubernetes: FILE}")}
"""Per kind: the size the goal names and the source entry that reads the file."""


def inventories(folder: Path, kind: str) -> tuple[Path, Path, int]:
    """(an inventory reading the generated source, the same with its ports written out, items)."""
    size, entry = PYTEST_CASES[kind]
    source = KINDS[kind][0](folder, size)
    reading = folder / f"{kind}-source.yml"
    reading.write_text(
        f"hosts:\n  fleet:\n    address: 10.0.0.1\n    open: [{entry.replace('FILE', source.name)}]\n"
    )
    (host,) = load_inventory(reading).hosts
    ports = "".join(f'      - "{e.port}/{e.proto.value}"\n' for e in host.expectations)
    written = folder / f"{kind}-written.yml"
    written.write_text(f"hosts:\n  fleet:\n    address: 10.0.0.1\n    open:\n{ports}")
    return reading, written, len(host.expectations)


def collect(inventory: Path) -> None:
    command = [sys.executable, "-m", "pytest", "--portcheck", inventory.name, "--collect-only", "-q",
               "-p", "no:cacheprovider"]  # fmt: skip
    done = subprocess.run(command, cwd=inventory.parent, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{inventory}: pytest exited {done.returncode}:\n{done.stdout[-2000:]}")


def through_pytest(folder: Path, runs: int) -> list[str]:
    """Print one line a kind; return the goals missed (reading the source adds more than 1 s)."""
    print(f"\n{'through pytest':<11} {'items':>8} {'source':>9} {'written':>9} {'added':>8} {'ratio':>6}")
    missed = []
    for kind, (size, _entry) in PYTEST_CASES.items():
        reading, written, items = inventories(folder, kind)
        pair: list[Callable[[], object]] = [lambda: collect(reading), lambda: collect(written)]  # noqa: B023
        source_time, written_time = interleaved_medians(pair, runs)
        added = source_time - written_time
        entries = "services" if kind == "compose" else "objects"
        print(
            f"{kind:<11} {items:>8,} {source_time:>8.3f}s {written_time:>8.3f}s {added:>+7.3f}s "
            f"{source_time / written_time:>6.2f}   ({size:,} {entries})"
        )
        if added > 1.0:
            missed.append(f"{kind} through pytest: reading the source adds {added:.3f} s > 1 s")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--no-pytest", action="store_true", help="skip the runs through pytest")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    missed = []
    header = ("source", "entries", "read", "per entry", "vs smallest", "baseline", "ratio")
    print("{:<11} {:>8} {:>9} {:>11} {:>12} {:>9} {:>6}".format(*header))
    with tempfile.TemporaryDirectory() as folder_name:
        for kind in KINDS:
            missed += measure(kind, Path(folder_name), sizes, options.runs)
        if not options.no_pytest:
            missed += through_pytest(Path(folder_name), options.runs)
    if missed:
        print("goals MISSED: " + "; ".join(missed))
    else:
        print(
            "goals met: compose at 5,000 services and kubernetes at 10,000 objects each within 1 s"
            + ("" if options.no_pytest else ", and within 1 s added to a pytest run")
        )


if __name__ == "__main__":
    main()
