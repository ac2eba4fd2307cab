"""Benchmark of service identification: `portcheck scan --banner` against `nmap -sV`, side by side.

    python benchmarks/bench_identify.py [--runs 3] [--silent 1000]

1. The real Debian servers of the tests (sshd, nginx http and https, Redis with and without a password,
   memcached, PostgreSQL, MariaDB, and vsftpd, dovecot, slapd, mosquitto, etcd, dnsmasq where
   installed) on random free loopback ports — never their usual ones. `portcheck scan 127.0.0.1 -p LIST
   --banner --json -` and `nmap -sV -sT -Pn -n -p LIST 127.0.0.1 -oX -` run interleaved; the script
   prints for each: the servers named, the products named, the median time, and the time ratio
   (goal: portcheck <= 0.2x nmap -sV, naming at least as many).
2. N loopback ports that accept and never say a word: `portcheck scan --banner` on all of them
   (goal: <= 5 s for 1,000). Every request the probes send is read and dropped.
Only loopback is scanned. Needs root (some servers drop privileges) and the Debian packages of ./run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


@contextlib.contextmanager
def real_servers() -> Iterator[dict[int, str]]:
    """Every server that can start here, as {port: what it is}."""
    import pytest
    import servers

    starters: list[tuple[str, Callable[[], contextlib.AbstractContextManager[object]]]] = [
        ("sshd", servers.sshd), ("nginx", servers.nginx), ("redis", servers.redis),
        ("redis+password", lambda: servers.redis(password="s3cret")), ("memcached", servers.memcached),
        ("postgresql", servers.postgresql), ("mariadb", servers.mariadb), ("vsftpd", servers.vsftpd),
        ("dovecot", servers.dovecot), ("slapd", servers.slapd),
        ("mosquitto", lambda: servers.mosquitto(anonymous=True)),
        ("etcd", servers.etcd), ("dnsmasq", servers.dnsmasq),
    ]  # fmt: skip
    found: dict[int, str] = {}
    with contextlib.ExitStack() as stack:
        for name, start in starters:
            try:
                ready = stack.enter_context(start())
            except (pytest.skip.Exception, RuntimeError) as exc:
                print(f"  ({name} left out: {str(exc)[:120]})")
                continue
            if isinstance(ready, servers.NginxPorts):
                found.update({ready.http: "nginx http", ready.https: "nginx https"})
            else:
                assert isinstance(ready, int)
                found[ready] = name
        yield found


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])}... failed: {completed.stderr[-800:]}")
    return elapsed, completed.stdout


def portcheck_found(output: str) -> dict[int, tuple[str, str]]:
    found = {}
    for result in json.loads(output)["results"]:
        probe = result.get("probe") or {}
        product = " ".join(filter(None, (probe.get("product"), probe.get("version"))))
        found[result["port"]] = (probe.get("service", "unknown"), product)
    return found


def nmap_found(output: str) -> dict[int, tuple[str, str]]:
    found = {}
    for port in ET.fromstring(output).iter("port"):
        service = port.find("service")
        name = "unknown"
        product = ""
        if service is not None and service.get("method") == "probed":
            name = service.get("name", "unknown")
            tunnel = service.get("tunnel")
            name = f"{tunnel}/{name}" if tunnel else name
            product = " ".join(filter(None, (service.get("product"), service.get("version"))))
        found[int(port.get("portid", "0"))] = (name, product)
    return found


def fmt(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def compare_with_nmap(runs: int) -> None:
    with real_servers() as ports:
        spec = ",".join(map(str, sorted(ports)))
        ours = [
            sys.executable,
            "-m",
            "pytest_portcheck",
            "scan",
            "127.0.0.1",
            "-p",
            spec,
            "--banner",
            "--json",
            "-",
        ]
        nmap = ["nmap", "-sV", "-sT", "-Pn", "-n", "-p", spec, "127.0.0.1", "-oX", "-"]
        our_times, nmap_times = [], []
        for _ in range(runs):
            elapsed, out = timed(ours)
            our_times.append(elapsed)
            mine = portcheck_found(out)
            elapsed, out = timed(nmap)
            nmap_times.append(elapsed)
            theirs = nmap_found(out)
    print(f"{'port':>6}  {'server':<15} {'portcheck --banner':<42} nmap -sV")
    for port, name in sorted(ports.items(), key=lambda item: item[1]):
        mine_text = " ".join(filter(None, mine.get(port, ("?", ""))))
        theirs_text = " ".join(filter(None, theirs.get(port, ("?", ""))))
        print(f"{port:>6}  {name:<15} {mine_text[:42]:<42} {theirs_text}")
    for label, found, times in (("portcheck --banner", mine, our_times), ("nmap -sV", theirs, nmap_times)):
        named = sum(
            1 for port in ports if found.get(port, ("unknown", ""))[0] not in ("unknown", "tcpwrapped")
        )
        products = sum(1 for port in ports if found.get(port, ("", ""))[1])
        print(
            f"{label:<19} named {named}/{len(ports)}, products {products}/{len(ports)}, "
            f"median {statistics.median(times):.2f} s (runs {fmt(times)})"
        )
    ratio = statistics.median(our_times) / statistics.median(nmap_times)
    print(f"time ratio portcheck/nmap: {ratio:.3f}  (goal <= 0.2)")


def serve_silently(count: int) -> None:
    """The helper process: ``count`` listeners that accept, read and drop, and never speak."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    selector = selectors.DefaultSelector()
    ports = []
    for _ in range(count):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ, "listener")
        ports.append(listener.getsockname()[1])
    print(json.dumps(ports), flush=True)
    while True:
        for key, _ in selector.select():
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            with contextlib.suppress(OSError):
                if key.data == "listener":
                    connection, _ = ready.accept()
                    connection.setblocking(False)
                    selector.register(connection, selectors.EVENT_READ, "connection")
                elif not ready.recv(65536):
                    selector.unregister(ready)
                    ready.close()


def silent_ports(count: int, runs: int) -> None:
    helper = subprocess.Popen(
        [sys.executable, __file__, "--serve-silently", str(count)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert helper.stdout is not None
        ports = json.loads(helper.stdout.readline())
        spec = ",".join(map(str, ports))
        command = [
            sys.executable,
            "-m",
            "pytest_portcheck",
            "scan",
            "127.0.0.1",
            "-p",
            spec,
            "--banner",
            "--json",
            "-",
        ]
        times = []
        for _ in range(runs):
            elapsed, out = timed(command)
            times.append(elapsed)
            report = json.loads(out)
            unknown = sum(1 for r in report["results"] if r.get("probe", {}).get("service") == "unknown")
            errors = sum(1 for r in report["results"] if r.get("probe", {}).get("local_failure"))
    finally:
        helper.kill()
        helper.wait()
    print(
        f"{count} silent open ports, --banner: median {statistics.median(times):.2f} s (runs {fmt(times)}); "
        f"{unknown} unknown, {errors} local failures  (goal <= 5 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--silent", type=int, default=1000)
    parser.add_argument("--serve-silently", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_silently:
        serve_silently(args.serve_silently)
        return
    compare_with_nmap(args.runs)
    silent_ports(args.silent, args.runs)


if __name__ == "__main__":
    main()
