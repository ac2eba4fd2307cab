"""Shared test fixtures: real loopback listeners, free ports, and network namespaces."""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import filelock
import pytest

import pytest_portcheck.cli
import pytest_portcheck.inventory.load
import pytest_portcheck.judge.expectation
import pytest_portcheck.report.html

# The plugin imports the engine, YAML, asyncio and filelock only once an inventory is configured.
# pytester's in-process runs drop the modules first imported inside a run, and importing C-backed ones
# (yaml's loader, asyncio) a second time in one process breaks them: they are loaded above, before any run.
_LOADED_BEFORE_PYTESTER = (
    filelock,
    pytest_portcheck.inventory.load,
    pytest_portcheck.judge.expectation,
    pytest_portcheck.report.html,
)

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # hypothesis's deadline (200 ms an example) is a timed assert, which this suite does not make: with
    # both Pythons' suites at once on a shared 2-core machine, one example of test_ports took 233 ms.
    # Only where hypothesis runs: the pytest runs the tests start in this folder (the demo, the
    # examples) load this file too, without the plugin, and would import hypothesis for nothing (0.4 s).
    if config.pluginmanager.has_plugin("hypothesispytest"):
        import hypothesis

        hypothesis.settings.register_profile("portcheck", deadline=None)
        hypothesis.settings.load_profile("portcheck")


# The pytest runs the tests start (pytester's, a child `python -m pytest`) use no hypothesis, but its
# pytest plugin imports all of hypothesis (and trio, through an entry point) at the end of every run:
# 1.2-1.4 s of CPU a run, about a hundred runs a suite. Users of the plugin do not have it either.
WITHOUT_HYPOTHESIS = "-p no:hypothesispytest"


@pytest.fixture(autouse=True, scope="session")
def _child_pytest_runs_without_hypothesis() -> Iterator[None]:
    # Set in the process that runs the tests (an xdist worker, or the only process), once the run
    # is under way: the suite's own run keeps the plugin, the pytest processes it starts do not.
    previous = os.environ.get("PYTEST_ADDOPTS")
    os.environ["PYTEST_ADDOPTS"] = f"{previous or ''} {WITHOUT_HYPOTHESIS}".strip()
    yield
    if previous is None:
        del os.environ["PYTEST_ADDOPTS"]
    else:
        os.environ["PYTEST_ADDOPTS"] = previous


@pytest.fixture(autouse=True, scope="session")
def _child_processes_keep_bytecode_caches() -> Iterator[None]:
    # Users have bytecode caches. Without them (PYTHONDONTWRITEBYTECODE=1, set on some CI images and
    # on this project's machines), pytest never stores its assertion-rewritten copies of the plugin's
    # ~90 modules: each pytest the suite starts rewrites and compiles them again, 0.5 CPU-s a run.
    previous = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    yield
    if previous is not None:
        os.environ["PYTHONDONTWRITEBYTECODE"] = previous


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytest's own, which clears PYTEST_ADDOPTS; its runs, in process or not, skip hypothesis too."""
    monkeypatch.setenv("PYTEST_ADDOPTS", WITHOUT_HYPOTHESIS)
    return pytester


def skip_or_fail(reason: str, require_variable: str) -> None:
    """Skip on a laptop; fail in CI, where ``require_variable`` is set to 1."""
    if os.environ.get(require_variable) == "1":
        pytest.fail(f"{reason} ({require_variable}=1 makes this a failure)", pytrace=False)
    pytest.skip(reason)


ListenerFactory = Callable[..., socket.socket]


@pytest.fixture
def listen() -> Iterator[ListenerFactory]:
    """Open real TCP listeners: ``listen()`` on a free 127.0.0.1 port, ``listen(port=, host=, backlog=)``."""
    opened: list[socket.socket] = []

    def factory(port: int = 0, host: str = "127.0.0.1", backlog: int = 128) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        opened.append(sock)
        return sock

    yield factory
    for sock in opened:
        sock.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 0.0.0.0 whose accept queue is full: every 127.x address drops our SYNs (filtered)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(4):  # nobody accepts: these fill the queue, and the kernel drops later SYNs
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield port
    for sock in [*fillers, listener]:
        sock.close()


Behaviour = Callable[[socket.socket], None]


@pytest.fixture
def peer() -> Iterator[Callable[[Behaviour], int]]:
    """``peer(behaviour)``: a loopback TCP server running ``behaviour(connection)`` for each client."""
    listeners: list[socket.socket] = []
    stop = threading.Event()

    def start(behaviour: Behaviour) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.1)
        listeners.append(listener)

        def serve() -> None:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except OSError:
                    continue
                threading.Thread(target=handle, args=(connection,), daemon=True).start()

        def handle(connection: socket.socket) -> None:
            with connection, contextlib.suppress(OSError):  # scans reset their connections
                behaviour(connection)

        threading.Thread(target=serve, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    stop.set()
    time.sleep(0.15)
    for listener in listeners:
        listener.close()


def greeting(text: bytes, linger: float = 0.5) -> Behaviour:
    """A behaviour for ``peer``: send ``text``, then wait a little before closing."""

    def behaviour(connection: socket.socket) -> None:
        connection.sendall(text)
        time.sleep(linger)

    return behaviour


def unused_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (bound and released, so the kernel just had it free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    """Poll ``condition`` until it holds: a readiness wait for the thing itself, not a guessed sleep."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.02)


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, as far as they are alive."""
    tree, index = [pid], 0
    while index < len(tree):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{tree[index]}/task"):
                with open(f"/proc/{tree[index]}/task/{task}/children") as children:
                    tree += [int(child) for child in children.read().split()]
        index += 1
    return tree


def connecting_to(port: int, pid: int) -> bool:
    """Whether process ``pid`` (or a process it started) has a TCP connect towards ``port`` in
    flight (SYN_SENT): a scan of a silent port has started probing it. Only that process's sockets
    count: another suite's full-range scan may be knocking at the same port meanwhile."""
    sockets = set()
    for process in _process_tree(pid):
        with contextlib.suppress(OSError):
            for descriptor in os.listdir(f"/proc/{process}/fd"):
                with contextlib.suppress(OSError):
                    sockets.add(os.readlink(f"/proc/{process}/fd/{descriptor}"))
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                remote_port, state, inode = int(fields[2].rsplit(":", 1)[1], 16), fields[3], fields[9]
                if remote_port == port and state == "02" and f"socket:[{inode}]" in sockets:
                    return True
    return False


def interruptible() -> None:
    """``preexec_fn`` for a child the test will Ctrl-C: SIGINT back to its default. A shell without
    job control starts background commands with SIGINT ignored (``./run tests`` runs the two
    Pythons' suites in the background), and an ignored signal stays ignored across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def portcheck_process(
    *arguments: str, cwd: Path = REPO, timeout: float = 120, **options: Any
) -> subprocess.CompletedProcess[str]:
    """The ``portcheck`` command as a user runs it (``python -m pytest_portcheck``), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_portcheck", *arguments],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, **options,
    )  # fmt: skip


def portcheck(
    *arguments: str, cwd: Path = REPO, timeout: float = 120, **options: Any
) -> subprocess.CompletedProcess[str]:
    """What ``python -m pytest_portcheck`` runs (the command's ``main``), in this process: each start of
    a Python costs 0.1 CPU-s and the suite runs the command some 260 times. Its output, exit status
    and uncaught exceptions are captured as the process's would be. Tests of the process itself (its
    descriptors, signals, limits, /dev/stdout: tests/test_cli.py) use ``portcheck_process``, and so do
    calls with options only a process takes. Several at once (threads) are processes: the working
    folder, the standard streams and signal handlers belong to the process."""
    in_process = threading.current_thread() is threading.main_thread() and not options
    if not in_process or any(argument.startswith("/dev/") for argument in arguments):
        return portcheck_process(*arguments, cwd=cwd, timeout=timeout, **options)
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True) for _ in range(2))
    saved, home = (sys.stdout, sys.stderr), os.getcwd()
    columns = os.environ.get("COLUMNS")
    try:
        sys.stdout, sys.stderr = out, err
        os.chdir(cwd)
        if columns is None:  # the process's standard output is a pipe, which has no width
            os.environ["COLUMNS"] = "80"
        try:
            status = pytest_portcheck.cli.main(list(arguments))
        except SystemExit as stop:
            status = _exit_status(stop.code)
        except Exception:  # the interpreter would print it and exit 1
            traceback.print_exc(file=sys.stderr)
            status = 1
    finally:
        sys.stdout, sys.stderr = saved
        os.chdir(home)
        if columns is None:
            os.environ.pop("COLUMNS", None)
    texts = [stream.buffer.getvalue().decode("utf-8") for stream in (out, err)]
    stdout, stderr = (text.replace("\r\n", "\n").replace("\r", "\n") for text in texts)  # text=True's newlines
    return subprocess.CompletedProcess(["portcheck", *arguments], status, stdout, stderr)


def _exit_status(code: object) -> int:
    """The exit status of ``sys.exit(code)``, as the interpreter computes it (a message goes to stderr)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


_SERVE = """
import socket, sys, time
held = []
for spec in sys.argv[1:]:
    host, port = spec.rsplit(":", 1)
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(1024)
    held.append(listener)
print("ready", flush=True)
time.sleep(600)
"""
"""The listeners of ``Namespace.serving``: one process holding them all, never accepting."""


class Namespace:
    """A network namespace of the test's own, with loopback up; removed by ``delete``.

    Names resolve inside it through /etc/netns/NAME/hosts (``ip netns exec`` mounts it over
    /etc/hosts), and its resolv.conf points at the namespace's own loopback, so no lookup can leave.
    """

    def __init__(self) -> None:
        self.name = f"pc-{uuid.uuid4().hex[:10]}"
        self.etc = Path("/etc/netns") / self.name
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        (self.etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
        self.run("ip", "link", "set", "lo", "up")

    def run(
        self, *command: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *command],
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def add_hosts(self, lines: str) -> None:
        with (self.etc / "hosts").open("a") as handle:
            handle.write(lines)

    def portcheck(self, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "pytest_portcheck", *arguments, check=False, timeout=timeout)

    def popen(self, *command: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.name, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @contextlib.contextmanager
    def serving(self, *listeners: str) -> Iterator[None]:
        """TCP listeners (``ADDRESS:PORT``; IPv6 when the address has a colon) inside the namespace, for
        the time of the block: a process that binds them all, then says it is ready."""
        server = self.popen(sys.executable, "-c", _SERVE, *listeners)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready", server.stderr
            yield
        finally:
            server.kill()
            server.communicate()

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False)
        shutil.rmtree(self.etc, ignore_errors=True)


def namespaces_available() -> str | None:
    """None when this machine can create namespaces with firewall rules, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables", "ip6tables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 iptables)"
    return None


@contextlib.contextmanager
def joined_namespaces(subnet: str) -> Iterator[tuple[Namespace, Namespace]]:
    """A scanner and a target namespace of the test's own, joined by a veth pair on ``subnet``.1 and
    ``subnet``.2 (a /24): nothing can leave the pair, and both are deleted afterwards. Skips (or
    fails, in CI) where namespaces cannot be made."""
    why_not = namespaces_available()
    if why_not is not None:
        skip_or_fail(why_not, "PORTCHECK_REQUIRE_NETNS")
    scanner, target = Namespace(), Namespace()
    try:
        side_a, side_b = f"va{scanner.name[3:11]}", f"vb{target.name[3:11]}"
        subprocess.run(["ip", "link", "add", side_a, "type", "veth", "peer", "name", side_b], check=True)
        subprocess.run(["ip", "link", "set", side_a, "netns", scanner.name], check=True)
        subprocess.run(["ip", "link", "set", side_b, "netns", target.name], check=True)
        for namespace, side, host in ((scanner, side_a, 1), (target, side_b, 2)):
            namespace.run("ip", "addr", "add", f"{subnet}.{host}/24", "dev", side)
            namespace.run("ip", "link", "set", side, "up")
        yield scanner, target
    finally:
        scanner.delete()
        target.delete()


_CLONE_NEWNET = 0x40000000


def _libc_call(name: str, *arguments: int) -> None:
    function = getattr(ctypes.CDLL(None, use_errno=True), name)
    if function(*arguments) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{name}: {os.strerror(error)}")


@contextlib.contextmanager
def own_loopback() -> Iterator[None]:
    """Run the calling thread (the test) in a fresh network namespace with only loopback, up, and
    bring it home afterwards. A scan over a whole range of 127.0.0.1 then sees the test's own
    listeners and nothing else: not another xdist worker's servers, not another suite on this
    machine. Threads and child processes the test starts inherit the namespace; pytest's main thread
    is the process's first, so /proc/net and /proc/sys/net describe it too."""
    why_not = namespaces_available()
    if why_not is not None:
        skip_or_fail(why_not, "PORTCHECK_REQUIRE_NETNS")
    with open("/proc/thread-self/ns/net", "rb") as home:
        _libc_call("unshare", _CLONE_NEWNET)
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
            yield
        finally:
            _libc_call("setns", home.fileno(), _CLONE_NEWNET)


@pytest.fixture
def private_loopback() -> Iterator[None]:
    """The test in a network namespace of its own (``own_loopback``): request it before ``listen``."""
    with own_loopback():
        yield


@pytest.fixture
def netns() -> Iterator[Namespace]:
    why_not = namespaces_available()
    if why_not is not None:
        skip_or_fail(why_not, "PORTCHECK_REQUIRE_NETNS")
    namespace = Namespace()
    try:
        yield namespace
    finally:
        namespace.delete()
