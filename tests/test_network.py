"""Honest verdicts over an emulated real network: two namespaces of the test's own joined by a veth
pair, with iptables in the target namespace limiting SYNs, dropping packets at random, or dropping
every port but a few. Nothing leaves the pair; both namespaces are deleted afterwards.

Port ranges are small so the file stays quick; the full-range figures are in
benchmarks/bench_network.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Namespace, joined_namespaces

ADDRESS = "10.76.0.2"
LISTENERS = (22, 80, 443, 1500, 2222)

@dataclass
class Link:
    scanner: Namespace
    target: Namespace

    def firewall(self, *rule: str) -> None:
        self.target.run("iptables", *rule)

    def scan(self, *arguments: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
        completed = self.scanner.portcheck("scan", ADDRESS, "--json", "-", *arguments, timeout=150)
        assert completed.returncode in (0, 1), completed.stderr
        return json.loads(completed.stdout), completed


@pytest.fixture
def link() -> Iterator[Link]:
    with joined_namespaces("10.76.0") as (scanner, target), target.serving(*(f"0.0.0.0:{p}" for p in LISTENERS)):
        yield Link(scanner, target)


def states(report: dict[str, Any]) -> tuple[set[int], Counter[str]]:
    """The listeners found open, and the states of every other port."""
    found = {r["port"] for r in report["results"] if r["state"] == "open"}
    others = Counter(r["state"] for r in report["results"] if r["port"] not in LISTENERS)
    return found, others


def quality(report: dict[str, Any]) -> dict[str, Any]:
    entries: dict[str, dict[str, Any]] = {entry["address"]: entry for entry in report["scan_quality"]}
    return entries.get(ADDRESS, {})


SYN_LIMIT = (
    "-A",
    "INPUT",
    "-p",
    "tcp",
    "--syn",
    "-m",
    "limit",
    "--limit",
    "400/second",
    "--limit-burst",
    "20",
)


def test_syn_limited_host_shows_every_listener_and_is_named(link: Link) -> None:
    # Before adaptive timing: most listeners came back filtered, and nothing said why.
    link.firewall(*SYN_LIMIT, "-j", "ACCEPT")
    link.firewall("-A", "INPUT", "-p", "tcp", "--syn", "-j", "DROP")
    report, completed = link.scan("-p", "1-2500")
    found, others = states(report)
    assert found == set(LISTENERS)
    assert others["closed"] >= 0.999 * (2500 - len(LISTENERS)), others
    seen = quality(report)
    assert seen["limited"] and seen["drops"] > 0 and seen["slowdowns"] > 0, seen
    assert f"Note: {ADDRESS} dropped" in completed.stderr  # the summary, with the JSON on stdout


def test_random_loss_finds_every_listener_in_repeated_runs(link: Link) -> None:
    for chain in ("INPUT", "OUTPUT"):
        link.firewall(
            "-A", chain, "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"
        )
    for _ in range(3):
        report, _completed = link.scan("-p", "1-2500")
        found, others = states(report)
        assert found == set(LISTENERS)
        assert others["filtered"] <= 2, others  # at most 0.1% of closed ports reported filtered


def test_firewalled_host_is_not_taken_for_a_limiting_one(link: Link) -> None:
    link.firewall("-A", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", "22,80,443", "-j", "ACCEPT")
    link.firewall("-A", "INPUT", "-p", "tcp", "-j", "DROP")
    report, _completed = link.scan("-p", "1-3000")
    found, others = states(report)
    assert found == {22, 80, 443}
    assert others == Counter({"filtered": 3000 - 3 - 2})  # 1500 and 2222 listen but are dropped
    seen = quality(report)
    # Silence that never turns into an answer is not a drop: no slowdown, no re-examination.
    assert seen["drops"] == 0 and seen["reexaminations"] == 0 and seen["unresolved"] == 0, seen
    assert report["summary"]["error"] == 0


def test_host_that_starts_limiting_halfway(link: Link) -> None:
    command = ["scan", ADDRESS, "-p", "1-6000", "--json", "-"]
    process = link.scanner.popen(sys.executable, "-m", "pytest_portcheck", *command)
    time.sleep(0.25)
    limit = (
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "--syn",
        "-m",
        "limit",
        "--limit",
        "1000/second",
        "--limit-burst",
        "20",
    )
    link.firewall(*limit, "-j", "ACCEPT")
    link.firewall("-A", "INPUT", "-p", "tcp", "--syn", "-j", "DROP")
    stdout, stderr = process.communicate(timeout=150)
    assert process.returncode == 0, stderr
    report = json.loads(stdout)
    found, others = states(report)
    assert found == set(LISTENERS)
    assert others["closed"] >= 0.999 * (6000 - len(LISTENERS)), others
    assert quality(report)["drops"] > 0


def test_max_rate_caps_the_scan(link: Link) -> None:
    started = time.monotonic()
    report, _completed = link.scan("-p", "1-400", "--max-rate", "200")
    elapsed = time.monotonic() - started
    found, others = states(report)
    assert found == {22, 80}
    assert others == Counter({"closed": 398})
    assert elapsed >= 1.5  # 400 probes at 200/s cannot take less than ~2 s
    assert report["settings"]["max_rate"] == 200


INVENTORY = """\
hosts:
  db:
    address: {address}
    only_open: [22]
    range: "1-2500"
"""


def run_pytest(link: Link, pytester: pytest.Pytester, *arguments: str) -> pytest.RunResult:
    command = [
        "ip",
        "netns",
        "exec",
        link.scanner.name,
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
    ]
    return pytester.run(*command, *arguments, timeout=150)


def test_only_open_on_a_limiting_host_names_every_exposed_port(link: Link, pytester: pytest.Pytester) -> None:
    # The false pass of the issue: every drop we caused became "closed", so only_open passed.
    link.firewall(*SYN_LIMIT, "-j", "ACCEPT")
    link.firewall("-A", "INPUT", "-p", "tcp", "--syn", "-j", "DROP")
    pytester.makefile(".yml", inventory=INVENTORY.format(address=ADDRESS))
    result = run_pytest(
        link, pytester, "--portcheck", "inventory.yml", "--portcheck-markdown", "summary.md",
        "--portcheck-html", "report.html",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    markdown = (pytester.path / "summary.md").read_text()
    page = (pytester.path / "report.html").read_text()
    assert f"{ADDRESS} dropped" in page.split('id="portcheck-data"', 1)[1]
    assert "### Scan quality" in markdown and f"{ADDRESS} dropped" in markdown
    result.stdout.fnmatch_lines(
        ["*db: 4 unexpected open port(s) in tcp/1-2500: 80 (*), 443 (*), 1500 (*), 2222 (*)"]
    )
    result.stdout.fnmatch_lines([f"scan quality: {ADDRESS} dropped *"])


STRICT_INVENTORY = """\
hosts:
  db:
    address: {address}
    max_rate: 2000
    closed: [4000]
    only_open: [22, 80, 443, 1500, 2222]
    range: "1-600"
"""


def test_strict_makes_a_pass_on_unresolved_silence_an_error(link: Link, pytester: pytest.Pytester) -> None:
    # A host that limits SYNs hard and also drops a few ports outright: re-examinations of the
    # limited ports get answered, those of the dropped ports never do, so their silence stays
    # unexplained. Without --portcheck-strict they pass as closed (filtered); with it, they are errors.
    for port in ("300", "301", "4000"):
        link.firewall("-A", "INPUT", "-p", "tcp", "--dport", port, "-j", "DROP")
    link.firewall("-A", "INPUT", "-p", "tcp", "--syn", "-m", "limit", "--limit", "100/second",
                  "--limit-burst", "5", "-j", "ACCEPT")  # fmt: skip
    link.firewall("-A", "INPUT", "-p", "tcp", "--syn", "-j", "DROP")
    pytester.makefile(".yml", inventory=STRICT_INVENTORY.format(address=ADDRESS))
    lenient = run_pytest(link, pytester, "--portcheck", "inventory.yml", "--portcheck-report", "r.json")
    lenient.assert_outcomes(passed=7)
    document = json.loads((pytester.path / "r.json").read_text())
    assert quality(document)["unresolved"] >= 3, document["scan_quality"]
    strict = run_pytest(link, pytester, "--portcheck", "inventory.yml", "--portcheck-strict")
    strict.assert_outcomes(passed=5, errors=2)
    strict.stdout.fnmatch_lines(["*silent port(s) on 10.76.0.2, which dropped * (--portcheck-strict)*"])


def test_an_open_port_that_met_silence_is_confirmed_before_it_fails(
    link: Link, pytester: pytest.Pytester
) -> None:
    # The first SYN to port 22 is dropped (a limit with one token that matches DROP once), the rest
    # pass. With no retries, the scan itself hears nothing; the confirmation probes do.
    link.firewall("-A", "INPUT", "-p", "tcp", "--dport", "22", "--syn", "-m", "limit", "--limit", "1/hour",
                  "--limit-burst", "1", "-j", "DROP")  # fmt: skip
    pytester.makefile(
        # 0.5 s: the attempt ends before the kernel's own SYN retransmission (1 s) could answer it.
        ".yml",
        inventory=f"hosts:\n  db:\n    address: {ADDRESS}\n    timeout: 0.5\n    retries: 0\n    open: [22, 80]\n",
    )
    result = run_pytest(link, pytester, "--portcheck", "inventory.yml", "--portcheck-report", "r.json")
    result.assert_outcomes(passed=2)
    found = {r["port"]: r for r in json.loads((pytester.path / "r.json").read_text())["results"]}
    assert found[22]["state"] == "open" and found[22]["attempts"] > 1
    assert found[80]["attempts"] == 1


def test_a_host_that_drops_everything_passes_closed_with_a_warning(link: Link, pytester: pytest.Pytester) -> None:
    # Plain silence (a DROP rule, no socket behind it) still satisfies closed:, with the warning that
    # nothing answered; --portcheck-strict makes it an error. (tests/test_plugin.py's silent port is a
    # stuck listener, which fails closed: since it is exposure.)
    link.firewall("-A", "INPUT", "-p", "tcp", "-j", "DROP")
    pytester.makefile(
        ".yml", inventory=f"defaults:\n  timeout: 0.2\n  retries: 0\nhosts:\n  quiet:\n    address: {ADDRESS}\n"
        "    closed: [4000]\n",
    )  # fmt: skip
    relaxed = run_pytest(link, pytester, "--portcheck", "inventory.yml")
    relaxed.assert_outcomes(passed=1)
    relaxed.stdout.fnmatch_lines([f"WARNING: inventory.yml::quiet: no port answered on {ADDRESS} — is the address right?*"])
    strict = run_pytest(link, pytester, "--portcheck", "inventory.yml", "--portcheck-strict")
    strict.assert_outcomes(errors=1)


LOCAL_LISTENER = textwrap.dedent(
    """
    import socket, sys, time
    s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
    print("ready", flush=True)
    time.sleep(600)
    """
)


def test_a_local_open_port_whose_listener_met_silence_is_confirmed(netns: Namespace, pytester: pytest.Pytester) -> None:
    # As above, on a local address: the first SYN is dropped, so the scan's only attempt meets
    # silence with a socket listening behind it (listen-no-accept). That silence is looked at again
    # like any other before open: fails; the confirmation's answer is open.
    netns.run("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "2222", "--syn", "-m", "limit", "--limit", "1/hour",
              "--limit-burst", "1", "-j", "DROP")  # fmt: skip
    server = netns.popen(sys.executable, "-c", LOCAL_LISTENER, "2222")
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        pytester.makefile(
            ".yml", inventory="hosts:\n  box:\n    address: 127.0.0.1\n    timeout: 0.5\n    retries: 0\n"
            "    open: [2222]\n",
        )  # fmt: skip
        command = ["ip", "netns", "exec", netns.name, sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        result = pytester.run(*command, "--portcheck", "inventory.yml", "--portcheck-report", "r.json", timeout=150)
    finally:
        server.kill()
        server.wait()
    result.assert_outcomes(passed=1)
    [found] = json.loads((pytester.path / "r.json").read_text())["results"]
    assert found["state"] == "open" and found["attempts"] > 1


def shard_scan(link: Link, folder: Path, inventory: str) -> tuple[dict[str, Any], float]:
    """``portcheck scan --inventory --shard 1/1`` from the scanner namespace: the report and the time."""
    (folder / "inventory.yml").write_text(inventory)
    started = time.monotonic()
    completed = link.scanner.portcheck(
        "scan", "--inventory", str(folder / "inventory.yml"), "--shard", "1/1",
        "--json", str(folder / "shard.json"), timeout=150,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads((folder / "shard.json").read_text()), elapsed


def shard_results(report: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """port -> (state, attempts), from a shard report's usual states and exceptions."""
    found: dict[int, tuple[str, int]] = {}
    for _host, _address, _proto, _state, _reason, _count, listed in report["addresses"]:
        for port, state, _why, _latency, attempts in listed:
            found[port] = (state, attempts)
    return found


def test_a_shard_scan_confirms_an_open_port_that_met_silence(link: Link, tmp_path: Path) -> None:
    # As test_an_open_port_that_met_silence_is_confirmed_before_it_fails, through a shard scan: it
    # once lacked the confirmation probes, and a lost SYN failed an open: entry.
    link.firewall("-A", "INPUT", "-p", "tcp", "--dport", "22", "--syn", "-m", "limit", "--limit", "1/hour",
                  "--limit-burst", "1", "-j", "DROP")  # fmt: skip
    report, _elapsed = shard_scan(
        link, tmp_path, f"hosts:\n  db:\n    address: {ADDRESS}\n    timeout: 0.5\n    retries: 0\n"
        "    open: [22, 80]\n    closed: [23, 24, 25]\n",
    )  # fmt: skip
    # Closed is the usual state, so the report lists both open ports with their attempts.
    found = shard_results(report)
    assert found[22][0] == "open" and found[22][1] > 1, report["addresses"]
    assert found[80] == ("open", 1), report["addresses"]


def test_a_shard_scan_keeps_the_hosts_max_rate(link: Link, tmp_path: Path) -> None:
    # 400 probes at 200/s cannot take less than ~2 s; the shard scan once ignored max_rate.
    report, elapsed = shard_scan(
        link, tmp_path, f"hosts:\n  db:\n    address: {ADDRESS}\n    max_rate: 200\n    only_open: [22, 80]\n"
        '    range: "1-400"\n',
    )  # fmt: skip
    assert elapsed >= 1.5
    assert report["settings"]["max_rate"] == 200


# --- a DNAT'd port of the scanner's own address (issue 18, part 9) ---------------------------------
# Docker without its userland proxy and CNI hostPort publish a port of the host's own address with an
# iptables DNAT rule in `nat OUTPUT` to a listener in another namespace. Probed from the host, the
# handshake completes on a local address with no local socket behind it; in the ephemeral range that
# once looked like a self-connect and ended as an error.

NAT_SUBNET = "10.77.0"
HOST_ADDRESS, CONTAINER_ADDRESS = f"{NAT_SUBNET}.1", f"{NAT_SUBNET}.2"
HOST_ADDRESS6, CONTAINER_ADDRESS6 = "fd77::1", "fd77::2"

STUCK = textwrap.dedent(
    """
    import socket, sys, time
    # A listener nobody accepts from, its queue filled: SYNs to it are dropped.
    s = socket.socket(); s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(0)
    fillers = [socket.socket() for _ in range(3)]
    for f in fillers:
        f.setblocking(False); f.connect_ex(("127.0.0.1", int(sys.argv[1])))
    time.sleep(0.2)
    print("ready", flush=True)
    time.sleep(600)
    """
)


@dataclass
class Published:
    """A scanner namespace (the host) publishing ports of its own addresses to a target (a container)."""

    host: Namespace
    container: Namespace
    low: int
    high: int

    @property
    def opened(self) -> list[int]:
        """DNAT'd to a listener in the container."""
        return [self.low + 21, self.low + 23, self.low + 25, self.low + 27]

    @property
    def shut(self) -> list[int]:
        """DNAT'd to ports of the container where nothing listens."""
        return [self.low + 22, self.low + 24, self.low + 26]

    def scan(self, *arguments: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
        completed = self.host.portcheck("scan", *arguments, "--json", "-", timeout=150)
        assert completed.returncode in (0, 1), completed.stderr
        return json.loads(completed.stdout), completed


def veth(namespace: Namespace) -> str:
    """The name of the namespace's end of its veth pair (``2: vaNAME@if3: <...>``)."""
    line = namespace.run("ip", "-o", "link", "show", "type", "veth").stdout
    return line.split(":")[1].strip().split("@")[0]


@pytest.fixture
def published() -> Iterator[Published]:
    with joined_namespaces(NAT_SUBNET) as (host, container):
        side = veth(host)
        for namespace, address in ((host, HOST_ADDRESS6), (container, CONTAINER_ADDRESS6)):
            namespace.run("ip", "-6", "addr", "add", f"{address}/64", "dev", veth(namespace), "nodad")
        low, high = map(int, host.run("cat", "/proc/sys/net/ipv4/ip_local_port_range").stdout.split())
        nat = Published(host, container, low, high)
        # The loopback form (a hostPort on 127.0.0.1) needs route_localnet and a source rewrite.
        host.run("sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1")
        host.run("iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "127.0.0.1", "-o", side,
                 "-j", "SNAT", "--to-source", HOST_ADDRESS)  # fmt: skip
        for port in nat.opened + nat.shut:
            for tool, local, remote in (
                ("iptables", HOST_ADDRESS, CONTAINER_ADDRESS),
                ("iptables", "127.0.0.1", CONTAINER_ADDRESS),
                ("ip6tables", HOST_ADDRESS6, f"[{CONTAINER_ADDRESS6}]"),
            ):
                host.run(tool, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", local, "--dport", str(port),
                         "-j", "DNAT", "--to-destination", f"{remote}:{port}")  # fmt: skip
        server = container.popen(sys.executable, "-c", SERVE_DUAL, *map(str, nat.opened))
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            yield nat
        finally:
            server.kill()
            server.wait()


SERVE_DUAL = textwrap.dedent(
    """
    import socket, sys, time
    held = []
    for port in map(int, sys.argv[1:]):
        s = socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port)); s.listen(1024); held.append(s)
    print("ready", flush=True)
    time.sleep(600)
    """
)


def published_states(report: dict[str, Any]) -> dict[tuple[str, int], tuple[str, str]]:
    return {(r["address"], r["port"]): (r["state"], r["reason"]) for r in report["results"]}


def test_a_dnat_port_of_the_hosts_own_address_is_open_not_a_self_connect(published: Published) -> None:
    nat = published
    stuck = nat.low + 30  # a stuck listener of the host itself: the other new answer, in the same scan
    server = nat.host.popen(sys.executable, "-c", STUCK, str(stuck))
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        local = nat.low + 29  # not published: nothing listens, the host refuses it
        spec = ",".join(map(str, [*nat.opened, *nat.shut, local, stuck]))
        addresses = (HOST_ADDRESS, "127.0.0.1", HOST_ADDRESS6)
        for _ in range(5):
            report, completed = nat.scan(*addresses, "-p", spec, "-t", "0.3", "--retries", "1")
            found = published_states(report)
            for address in addresses:
                opened = {port for (where, port), (state, _) in found.items() if where == address and state == "open"}
                assert opened == set(nat.opened), found
                assert all(found[(address, port)] == ("open", "syn-ack") for port in nat.opened)
                assert all(found[(address, port)] == ("closed", "conn-refused") for port in [*nat.shut, local])
            assert found[(HOST_ADDRESS, stuck)] == ("filtered", "listen-no-accept")
            assert found[("127.0.0.1", stuck)] == ("filtered", "listen-no-accept")
            assert found[(HOST_ADDRESS6, stuck)] == ("closed", "conn-refused")  # bound to 0.0.0.0 only
            assert report["summary"]["error"] == 0, completed.stderr  # once: error, local-error: self-connect
    finally:
        server.kill()
        server.wait()
    # The whole ephemeral range of the host's address: the published ports are open, and no
    # self-connect or simultaneous open of the scan's own probes is (nor an error).
    for address in (HOST_ADDRESS, "127.0.0.1"):
        report, _completed = nat.scan(address, "-p", f"{nat.low}-{nat.high}")
        found = published_states(report)
        assert {port for (_, port), (state, _) in found.items() if state == "open"} == set(nat.opened)
        assert report["summary"]["error"] == 0 and report["summary"]["filtered"] == 0, report["summary"]


def test_dnat_ports_behind_a_syn_limit_are_still_open(published: Published) -> None:
    # The container answers 20 SYNs a second (bursts of 5); every published port is asked at once.
    nat = published
    nat.container.run("iptables", "-A", "INPUT", "-p", "tcp", "--syn", "-m", "limit", "--limit", "20/second",
                      "--limit-burst", "5", "-j", "ACCEPT")  # fmt: skip
    nat.container.run("iptables", "-A", "INPUT", "-p", "tcp", "--syn", "-j", "DROP")
    spec = ",".join(map(str, nat.opened + nat.shut))
    for _ in range(3):
        report, completed = nat.scan(HOST_ADDRESS, "127.0.0.1", "-p", spec, "-t", "0.3", "--retries", "8")
        found = published_states(report)
        for address in (HOST_ADDRESS, "127.0.0.1"):
            assert all(found[(address, port)] == ("open", "syn-ack") for port in nat.opened), found
            assert all(found[(address, port)] == ("closed", "conn-refused") for port in nat.shut), found
        assert report["summary"]["error"] == 0, completed.stderr


def test_dnat_ports_over_a_lossy_link_are_still_open(published: Published) -> None:
    nat = published
    for chain in ("INPUT", "OUTPUT"):
        nat.container.run("iptables", "-A", chain, "-m", "statistic", "--mode", "random", "--probability", "0.1",
                          "-j", "DROP")  # fmt: skip
    spec = ",".join(map(str, nat.opened + nat.shut))
    for _ in range(3):
        report, _completed = nat.scan(HOST_ADDRESS, "127.0.0.1", "-p", spec, "-t", "0.3", "--retries", "8")
        found = published_states(report)
        assert report["summary"]["error"] == 0, report["results"]
        for address in (HOST_ADDRESS, "127.0.0.1"):
            assert all(found[(address, port)] == ("open", "syn-ack") for port in nat.opened), found
            assert all(found[(address, port)][0] == "closed" for port in nat.shut), found


ASK_CONNTRACK = textwrap.dedent(
    """
    import json, socket, sys
    from pytest_portcheck.engine.kernel import translated_destination
    address, published, plain = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    answers = {}
    client = socket.create_connection((address, published))
    local, peer = client.getsockname()[:2], client.getpeername()[:2]
    answers["published"] = translated_destination(local, peer)
    listener = socket.socket(family); listener.bind((address, plain)); listener.listen(1)
    other = socket.create_connection((address, plain))
    accepted, _ = listener.accept()
    answers["plain"] = translated_destination(other.getsockname()[:2], other.getpeername()[:2])
    # Asked from the accepting end, the entry is found by its reply direction: not our connection.
    answers["reply side"] = translated_destination(accepted.getsockname()[:2], accepted.getpeername()[:2])
    print(json.dumps(answers))
    """
)


def test_conntrack_names_where_a_published_port_leads(published: Published) -> None:
    nat = published
    for address, container in ((HOST_ADDRESS, CONTAINER_ADDRESS), (HOST_ADDRESS6, CONTAINER_ADDRESS6)):
        port, plain = nat.opened[0], nat.low + 40
        asked = nat.host.run(sys.executable, "-c", ASK_CONNTRACK, address, str(port), str(plain))
        answers = json.loads(asked.stdout)
        assert answers == {"published": [container, port], "plain": None, "reply side": None}, asked.stderr
    # Without CAP_NET_ADMIN conntrack cannot be asked: the published port is not vouched for, and
    # stays an error (never an open the engine cannot explain).
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is missing (util-linux)")
    unprivileged = nat.host.run(
        setpriv, "--bounding-set", "-net_admin", "--inh-caps", "-net_admin", sys.executable, "-m",
        "pytest_portcheck", "scan", HOST_ADDRESS, "-p", str(nat.opened[0]), "--json", "-", check=False,
    )  # fmt: skip
    [result] = json.loads(unprivileged.stdout)["results"]
    assert (result["state"], result["reason"]) == ("error", "local-error: self-connect")
