"""Every command and every inventory shown in README.md and docs/*.md runs here, so the docs cannot rot.

How to write a block the test understands (the rules are checked: a block it cannot classify fails):

- **Commands** go in ```console blocks, one command per line starting with ``$ `` (a line ending in ``\\``
  continues it). The lines up to the next ``$`` are its output as shown, compared line by line with the real
  output (standard output and error together, as a terminal shows them) once both are normalised: runs of
  blanks become one; durations (``0.2 ms``, ``1.19s``), timestamps, generated run ids, digests and portcheck's
  version match any other; runs of ``=``, ``_``, ``!`` or ``-`` shorten to three; the page's folder reads as
  ``/home/me/infra``. A ``*`` in a shown line matches anything, and a line ``...`` stands for any number of
  lines: output shown without one must be whole. A command shown with no output has its output unchecked.
- Every command must exit 0 unless its comment says otherwise: ``$ pytest --portcheck x.yml   # exits 1``.
  Each runs in a fresh ``bash`` in the page's folder, with the installed ``portcheck`` and ``pytest`` first on
  the PATH, ``COLUMNS=110``, no ``PORTCHECK_*``, ``GITHUB_*`` or ``PYTEST_*`` variable of the test's own, and
  the suite's hypothesis plugin off (users do not have it). No ``&``: services come from ``listen`` below.
- **Inventories**: a ```yaml block holding a mapping with ``hosts:`` is loaded with
  ``pytest --portcheck FILE --collect-only -q`` (all of a page's in one run) and must load; one marked
  ``invalid`` must fail to load, and a later command of the page must run it and show its error.
- **Markers** are HTML comments right before a block (GitHub does not show them)::

      <!-- doctest: file inventory.yml -->      write the block to this file, for the page's commands
      <!-- doctest: invalid -->                 an inventory shown for its error (with file)
      <!-- doctest: unchecked REASON -->        run the commands and check their status, not their output
      <!-- doctest: skip REASON -->             not run: counted and listed as exempt, with the reason

  and anywhere in a page, changing the page's network from there on (the drift a page narrates)::

      <!-- doctest: listen ssh 127.0.0.1:22, tcp 10.0.0.5:443 -->   services (tests/docpeers.py has the kinds)
      <!-- doctest: host db.example.com 10.0.0.5 -->                a name, resolving to an address there
      <!-- doctest: address 10.0.0.6 -->                            an address with nothing on it
      <!-- doctest: drop tcp 127.0.0.1:9200 -->                     a firewall that drops those packets
      <!-- doctest: needs nmap ndiff -->                            programs the page runs
      <!-- doctest: skip-page REASON -->                            a page not run yet (say so visibly too)

  Several markers may share a comment, separated by ``;`` (a REASON runs to the end of the comment).

**The network rule.** Each page runs in a network namespace of its own that holds nothing but loopback
(checked before any command runs): example names resolve there through its own hosts file, example
addresses are added to its loopback, and its services are processes the test starts there. Nothing a
command sends can leave the namespace, whatever address a page shows; the namespace is deleted after.

``python tests/test_docs.py`` lists every block and how it is treated.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Namespace, namespaces_available, skip_or_fail

ROOT = Path(os.environ.get("PORTCHECK_SOURCE") or REPO)
"""The checkout the docs are read from: ``./run tests`` runs the suite from a copy of tests/ and hands the
checkout over in PORTCHECK_SOURCE."""

PEERS = Path(__file__).resolve().parent / "docpeers.py"
SHOWN_FOLDER = "/home/me/infra"
README_LIMIT = 250
WIDTH = 110
COMMAND_TIMEOUT = 90
BLOCK_MARKERS = {"file", "invalid", "unchecked", "skip"}
NETWORK_MARKERS = {"listen", "host", "address", "drop", "needs"}
PAGE_MARKERS = {"skip-page"}
VISIBLE_SKIP_NOTE = "not run by the doc test"


@dataclass(frozen=True, slots=True)
class Marker:
    line: int
    name: str
    argument: str


@dataclass(slots=True)
class Block:
    page: str
    line: int
    language: str
    lines: list[str]
    markers: list[Marker] = field(default_factory=list)

    def marker(self, name: str) -> Marker | None:
        return next((marker for marker in self.markers if marker.name == name), None)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


@dataclass(slots=True)
class Page:
    name: str
    text: str
    steps: list[Block | Marker] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def blocks(self) -> list[Block]:
        return [step for step in self.steps if isinstance(step, Block)]


@dataclass(frozen=True, slots=True)
class Command:
    line: int
    text: str
    status: int
    shown: tuple[str, ...]


_MARKER = re.compile(r"<!--\s*doctest:(.*?)-->", re.DOTALL)
_FENCE = re.compile(r"^(\s*)(`{3,})\s*([\w-]*)\s*$")
_STATUS = re.compile(r"#[^\n]*\bexits (\d+)\b")


def pages() -> list[Path]:
    readme = ROOT / "README.md"
    return [readme, *sorted((ROOT / "docs").glob("*.md"))] if readme.exists() else []


def parse(path: Path) -> Page:
    return parse_text(path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"))


def parse_text(name: str, text: str) -> Page:
    """The page's blocks and markers in order; what breaks the convention goes to ``problems``."""
    page = Page(name, text)
    lines = text.split("\n")
    pending: list[Marker] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence:
            index = _read_block(page, lines, index, fence, pending)
            pending = []
            continue
        if "<!--" in line and "doctest:" in line:
            end = index
            while "-->" not in lines[end] and end + 1 < len(lines):
                end += 1
            found = _MARKER.search("\n".join(lines[index : end + 1]))
            if found is None:
                page.problems.append(f"{name}:{index + 1}: a doctest marker without its closing -->")
            else:
                for marker in _markers(found.group(1), index + 1):
                    _place(page, marker, pending)
            index = end + 1
            continue
        if line.strip() and pending:
            page.problems.append(
                f"{name}:{pending[0].line}: marker '{pending[0].name}' is not right before a block"
            )
            pending = []
        index += 1
    if pending:
        page.problems.append(
            f"{name}:{pending[0].line}: marker '{pending[0].name}' is not followed by a block"
        )
    if page.skipped is not None and not any(
        line.startswith(">") and VISIBLE_SKIP_NOTE in line for line in lines
    ):
        page.problems.append(f"{name}: skip-page needs a visible note too ('> ... {VISIBLE_SKIP_NOTE} ...')")
    return page


def _markers(body: str, line: int) -> Iterator[Marker]:
    """Markers are separated by ``;`` or new lines; a reason (skip, unchecked, skip-page) runs to the end."""
    parts = re.split(r"[;\n]", body)
    for number, part in enumerate(parts):
        words = part.strip().split(None, 1)
        if not words:
            continue
        if words[0] in ("skip", "unchecked", "skip-page"):
            reason = ";".join([words[1] if len(words) > 1 else "", *parts[number + 1 :]])
            yield Marker(line, words[0], " ".join(reason.split()))
            return
        yield Marker(line, words[0], words[1].strip() if len(words) > 1 else "")


def _place(page: Page, marker: Marker, pending: list[Marker]) -> None:
    if marker.name in BLOCK_MARKERS:
        pending.append(marker)
    elif marker.name in NETWORK_MARKERS:
        page.steps.append(marker)
    elif marker.name in PAGE_MARKERS:
        page.skipped = marker.argument or "no reason given"
    else:
        known = ", ".join(sorted(BLOCK_MARKERS | NETWORK_MARKERS | PAGE_MARKERS))
        page.problems.append(
            f"{page.name}:{marker.line}: unknown doctest marker '{marker.name}' (known: {known})"
        )


def _read_block(page: Page, lines: list[str], start: int, fence: re.Match[str], markers: list[Marker]) -> int:
    indent, ticks, language = fence.group(1), fence.group(2), fence.group(3)
    body = []
    index = start + 1
    while index < len(lines) and lines[index].strip() != ticks:
        body.append(lines[index][len(indent) :] if lines[index].startswith(indent) else lines[index].lstrip())
        index += 1
    if index == len(lines):
        page.problems.append(f"{page.name}:{start + 1}: a code block that never closes")
    page.steps.append(Block(page.name, start + 1, language, body, list(markers)))
    return index + 1


def is_inventory(block: Block) -> bool:
    if block.language != "yaml":
        return False
    try:
        document = yaml.safe_load(block.text)
    except yaml.YAMLError:
        return block.marker("invalid") is not None  # shown for its error, which may be the YAML's own
    return isinstance(document, dict) and "hosts" in document


def kind(page: Page, block: Block) -> str:
    """exempt, command, inventory, invalid inventory or file; anything else is a problem, named."""
    skip = block.marker("skip")
    if page.skipped is not None or skip is not None:
        reason = page.skipped if skip is None else skip.argument
        return f"exempt: {reason}" if reason else "problem: 'skip' needs a reason"
    if block.language == "console":
        first = next((line for line in block.lines if line.strip()), "")
        return "command" if first.startswith("$ ") else "problem: a console block must start with '$ '"
    if is_inventory(block):
        return "invalid inventory" if block.marker("invalid") else "inventory"
    if block.marker("invalid"):
        return "problem: 'invalid' goes with an inventory"
    if block.marker("file"):
        return "file"
    if block.language in ("", "sh", "bash", "shell", "text"):
        return "problem: commands go in ```console blocks with '$ ' prompts; other text needs a marker"
    return f"problem: a ```{block.language} block that is not an inventory needs 'file NAME' or 'skip REASON'"


def commands(block: Block) -> list[Command]:
    found: list[Command] = []
    text: list[str] = []
    shown: list[str] = []
    line = 0
    lines = iter(enumerate(block.lines))
    for number, content in lines:
        if content.startswith("$ "):
            if text:
                found.append(_command(line, text, shown))
            line, text, shown = block.line + 1 + number, [content[2:]], []
            while text[-1].endswith("\\"):
                text.append(next(lines)[1])
        else:
            shown.append(content)
    if text:
        found.append(_command(line, text, shown))
    return found


def _command(line: int, text: list[str], shown: list[str]) -> Command:
    joined = "\n".join(text)
    status = _STATUS.search(joined)
    while shown and not shown[-1].strip():
        shown.pop()
    return Command(line, joined, int(status.group(1)) if status else 0, tuple(shown))


# --- comparing output ------------------------------------------------------------------------------------

_DURATION = re.compile(r"\d[\d,]*(?:\.\d+)? ?(?:ms|µs|s)\b")
_VERSION = re.compile(r"\b(portcheck[- ])\d+\.\d+(?:\.\d+)?\w*")
_RULE = re.compile(r"([=_!-])\1{2,}")
_TIMESTAMP = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")
_RUN_ID = re.compile(r"\b\d{8}T\d{6}Z-[0-9a-f]{8}\b")
_DIGEST = re.compile(r"\b[0-9a-f]{32,64}\b")


def normalise(line: str, folder: str) -> str:
    line = line.replace(folder, SHOWN_FOLDER)
    line = _VERSION.sub(r"\1<version>", line)
    line = _RUN_ID.sub("<run-id>", line)
    line = _DIGEST.sub("<digest>", line)
    line = _TIMESTAMP.sub("<timestamp>", line)
    line = _DURATION.sub("<duration>", line)
    line = _RULE.sub(r"\1\1\1", line)
    return " ".join(line.split())


def _pattern(shown: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in shown.split("*")))


def output_matches(shown: tuple[str, ...], actual: list[str]) -> bool:
    """Shown lines match actual lines in order, consecutively, except where a ``...`` line skips any."""
    segments: list[list[re.Pattern[str]]] = [[]]
    for line in shown:
        if line == "...":
            segments.append([])
        else:
            segments[-1].append(_pattern(line))
    open_start, open_end = not segments[0], not segments[-1]
    segments = [segment for segment in segments if segment]
    if not segments:
        return True

    def fits(segment: list[re.Pattern[str]], at: int) -> bool:
        return at + len(segment) <= len(actual) and all(
            pattern.fullmatch(actual[at + offset]) for offset, pattern in enumerate(segment)
        )

    position = 0
    for number, segment in enumerate(segments):
        last = number == len(segments) - 1
        if last and not open_end:
            at = len(actual) - len(segment)
            return at >= position and (open_start or number > 0 or at == 0) and fits(segment, at)
        if number == 0 and not open_start:
            if not fits(segment, 0):
                return False
            position = len(segment)
            continue
        found = next((at for at in range(position, len(actual)) if fits(segment, at)), None)
        if found is None:
            return False
        position = found + len(segment)
    return True


# --- running a page --------------------------------------------------------------------------------------


class PageRun:
    """One page's namespace, folder and services, and the inventories its blocks showed."""

    def __init__(self, page: Page, namespace: Namespace, folder: Path) -> None:
        self.page, self.namespace, self.folder = page, namespace, folder
        self.peers: list[subprocess.Popen[str]] = []
        self.addresses: set[str] = set()
        self.inventories: list[tuple[Block, str]] = []
        self.environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PORTCHECK_", "GITHUB_", "PYTEST_", "JOB_", "LC_"))
            # PYTHONDONTWRITEBYTECODE: users have bytecode caches; without one, each pytest starts 0.6 s later.
            and key not in {"CI", "BUILD_NUMBER", "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "PY_COLORS"}
            and key != "PYTHONDONTWRITEBYTECODE"
        }
        self.environment |= {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "COLUMNS": "110",
            "PYTHONUNBUFFERED": "1",
            "LC_ALL": "C.UTF-8",
            # The suite's hypothesis plugin is not part of a user's install, and costs 0.6 s a pytest start.
            "PYTEST_ADDOPTS": "-p no:hypothesispytest",
        }

    def shell(self, text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace.name, "bash", "-c", text],
            cwd=self.folder, env=self.environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, encoding="utf-8", errors="replace", timeout=COMMAND_TIMEOUT,
        )  # fmt: skip

    def network(self, marker: Marker) -> None:
        where = f"{self.page.name}:{marker.line}"
        words = marker.argument.replace(",", " ").split()
        if marker.name == "needs":
            for program in words:
                if shutil.which(program) is None:
                    skip_or_fail(
                        f"{where} needs {program}, which is not installed", "PORTCHECK_REQUIRE_SERVERS"
                    )
        elif marker.name == "address":
            for address in words:
                self.add_address(address)
        elif marker.name == "host":
            assert len(words) == 2, f"{where}: host NAME ADDRESS"
            self.add_address(words[1])
            self.namespace.add_hosts(f"{words[1]} {words[0]}\n")
        elif marker.name == "drop":
            assert len(words) == 2, f"{where}: drop PROTOCOL ADDRESS:PORT"
            address, port = words[1].rsplit(":", 1)
            address = address.strip("[]")
            tables = "ip6tables" if ":" in address else "iptables"
            self.namespace.run(
                tables, "-A", "INPUT", "-p", words[0], "-d", address, "--dport", port, "-j", "DROP"
            )
        elif marker.name == "listen":
            assert words and len(words) % 2 == 0, f"{where}: listen KIND ADDRESS:PORT[, KIND ADDRESS:PORT]"
            for address in words[1::2]:
                self.add_address(address.rsplit(":", 1)[0].strip("[]"))
            self.start_peers(words, where)

    def add_address(self, address: str) -> None:
        if address in self.addresses or address.startswith("127.") or address == "::1":
            return
        self.namespace.run("ip", "addr", "add", f"{address}/{128 if ':' in address else 32}", "dev", "lo")
        self.addresses.add(address)

    def start_peers(self, arguments: list[str], where: str) -> None:
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace.name, sys.executable, str(PEERS), *arguments],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.peers.append(process)
        assert process.stdout is not None and process.stderr is not None
        ready = process.stdout.readline()  # a line once every socket is bound, or EOF if it failed
        if ready.strip() != "ready":
            pytest.fail(f"{where}: the services did not start: {process.stderr.read()}", pytrace=False)

    def stop(self) -> None:
        for process in self.peers:
            assert process.stdin is not None
            process.stdin.close()
        for process in self.peers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def write(self, block: Block, name: str) -> None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text, encoding="utf-8")

    def run_command(self, block: Block, command: Command, unchecked: bool) -> None:
        completed = self.shell(command.text)
        actual = [normalise(line, str(self.folder)) for line in completed.stdout.splitlines()]
        while actual and not actual[-1]:
            actual.pop()
        shown = tuple(normalise(line, str(self.folder)) if line != "..." else line for line in command.shown)
        problems = []
        if completed.returncode != command.status:
            problems.append(f"exit status {completed.returncode}, the page says {command.status}")
        if command.shown and not unchecked and not output_matches(shown, actual):
            problems.append("the output differs from what the page shows")
        if problems:
            pytest.fail(
                f"{self.page.name}:{command.line}: $ {command.text}\n{'; '.join(problems)}\n"
                f"--- shown (normalised):\n"
                + "\n".join(shown)
                + "\n--- actual (normalised):\n"
                + "\n".join(actual),
                pytrace=False,
            )

    def validate_inventories(self) -> None:
        """Every inventory shown loads (in one collection), and every one marked invalid fails to. Each is
        copied beside the file it was written to: the Compose file or manifests it reads are found there."""
        folder = self.folder
        valid = []
        for block, name in self.inventories:
            copy = str(Path(name).parent / f"L{block.line}-{Path(name).name}")
            (folder / copy).parent.mkdir(parents=True, exist_ok=True)
            (folder / copy).write_text(block.text, encoding="utf-8")
            if block.marker("invalid"):
                self.collect(folder, [copy], block, should_load=False)
            else:
                valid.append(copy)
        if valid:
            blocks = [block for block, _ in self.inventories if not block.marker("invalid")]
            self.collect(folder, valid, blocks[0], should_load=True)

    def collect(self, folder: Path, names: list[str], block: Block, *, should_load: bool) -> None:
        options = " ".join(f"--portcheck {shlex.quote(name)}" for name in names)
        completed = subprocess.run(
            ["ip", "netns", "exec", self.namespace.name, "bash", "-c",
             f"pytest {options} --collect-only -q -p no:cacheprovider"],
            cwd=folder, env=self.environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, encoding="utf-8", errors="replace", timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
        if not should_load:
            assert completed.returncode != 0 and "ERROR collecting" in completed.stdout, (
                f"{block.where}: the inventory marked invalid loads:\n{completed.stdout}"
            )
            return
        empty = [name for name in names if not re.search(rf"^{re.escape(name)}::", completed.stdout, re.M)]
        assert completed.returncode == 0 and not empty, (
            f"{self.page.name}: an inventory shown does not load (Lnnn- names the block's line; "
            f"without items: {', '.join(empty) or 'none'}):\n{completed.stdout}"
        )


def run_page(page: Page, namespace: Namespace, folder: Path) -> int:
    """Run the page's steps in order; returns how many commands ran."""
    links = namespace.run("ip", "-o", "link", "show").stdout.split("\n")
    assert [line.split(":")[1].strip() for line in links if line] == ["lo"], (
        "the namespace holds more than lo"
    )
    run = PageRun(page, namespace, folder)
    ran = 0
    try:
        for step in page.steps:
            if isinstance(step, Marker):
                run.network(step)
                continue
            what = kind(page, step)
            file = step.marker("file")
            if what in ("inventory", "invalid inventory"):
                name = file.argument if file else f"inventory-L{step.line}.yml"
                run.inventories.append((step, name))
                if file:
                    run.write(step, name)
            elif what == "file":
                assert file is not None
                run.write(step, file.argument)
            elif what == "command":
                for command in commands(step):
                    run.run_command(step, command, unchecked=step.marker("unchecked") is not None)
                    ran += 1
        run.validate_inventories()
    finally:
        run.stop()
    return ran


# --- the tests -------------------------------------------------------------------------------------------


def all_pages() -> list[Page]:
    return [parse(path) for path in pages()]


def inventory_of_blocks() -> list[tuple[str, str]]:
    """(where, kind) of every block of every page."""
    return [(block.where, kind(page, block)) for page in all_pages() for block in page.blocks]


def test_the_readme_is_short() -> None:
    assert pages(), f"no README.md in {ROOT}: run the suite from the checkout, or set PORTCHECK_SOURCE to it"
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_LIMIT, (
        f"README.md has {lines} lines; move detail to docs/ (at most {README_LIMIT})"
    )


def problems_of(page: Page) -> list[str]:
    """Everything on the page that breaks the convention: blocks no rule covers, markers out of place, files
    written that no command reads."""
    problems = list(page.problems)
    problems += [
        f"{block.where}: {what[9:]}"
        for block in page.blocks
        if (what := kind(page, block)).startswith("problem")
    ]
    return problems + _unused_files(page)


def test_every_block_is_run_validated_or_marked_exempt() -> None:
    problems = [problem for page in all_pages() for problem in problems_of(page)]
    assert not problems, "blocks the doc test cannot classify:\n" + "\n".join(problems)
    counts = Counter(what.split(":")[0] for _, what in inventory_of_blocks())
    assert counts["command"] >= 20 and counts["inventory"] >= 10, counts  # the pages were found and read
    print(_summary())


def _unused_files(page: Page) -> list[str]:
    """A file written for commands that no later command reads, and an invalid inventory no command shows."""
    problems = []
    blocks = page.blocks
    for position, block in enumerate(blocks):
        file = block.marker("file")
        what = kind(page, block)
        if file is None or what.startswith("exempt"):
            if what == "invalid inventory":
                problems.append(
                    f"{block.where}: an invalid inventory needs 'file NAME' and a command that runs it"
                )
            continue
        later = [
            command
            for other in blocks[position + 1 :]
            if kind(page, other) == "command"
            for command in commands(other)
            if _uses(command.text, file.argument)
        ]
        if what == "file" and not later:
            problems.append(f"{block.where}: {file.argument} is written, but no later command uses it")
        if what == "invalid inventory" and not any(c.status != 0 and c.shown for c in later):
            problems.append(f"{block.where}: no later command shows the error of {file.argument}")
    return problems


PYTEST_CONFIGURATION = {"pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg", "conftest.py"}


def _uses(command: str, name: str) -> bool:
    """The command names the file or its folder, or is a pytest run that reads it as configuration."""
    folder = name.split("/")[0] + "/"
    if name in command or ("/" in name and folder in command):
        return True
    return Path(name).name in PYTEST_CONFIGURATION and re.match(r"(\w+=\S+ )*pytest\b", command) is not None


def test_links_between_pages_resolve() -> None:
    problems = []
    for page in all_pages():
        prose = re.sub(r"```.*?```", "", page.text, flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):
                continue  # another site: not fetched here
            path_part, _, anchor = target.partition("#")
            path = (ROOT / page.name).parent / path_part if path_part else ROOT / page.name
            if not path.exists():
                problems.append(f"{page.name}: link to {target}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                problems.append(f"{page.name}: link to {target}: no such heading")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    problems += [
        f"README.md does not link to {path.name}" for path in pages()[1:] if f"docs/{path.name}" not in readme
    ]
    assert not problems, "\n".join(problems)


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    headings = re.findall(r"^#+\s+(.*)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_prose_is_wrapped() -> None:
    """Prose wraps at 110 columns, like the code; tables and code blocks cannot, and do not."""
    long = []
    for page in all_pages():
        inside = False
        for number, line in enumerate(page.text.split("\n"), 1):
            if _FENCE.match(line):
                inside = not inside
            elif not inside and len(line) > WIDTH and not line.lstrip().startswith(("|", "<!--")):
                long.append(f"{page.name}:{number}: {len(line)} columns")
    assert not long, "\n".join(long)


def runnable_pages() -> list[str]:
    return [
        page.name
        for page in all_pages()
        if any(not kind(page, block).startswith("exempt") for block in page.blocks)
    ]


UNRUNNABLE = """\
```sh
portcheck scan 127.0.0.1
```

```yaml
jobs: {scan: {runs-on: ubuntu-latest}}
```

<!-- doctest: file broken.yml; invalid -->
```yaml
hosts: {web: {closd: [22]}}
```

<!-- doctest: file notes.txt -->
```text
nobody reads this
```

<!-- doctest: skip -->
```console
$ portcheck scan 127.0.0.1
```

<!-- doctest: frobnicate -->
```console
no prompt here
```
"""


def test_what_the_doc_test_cannot_run_is_named() -> None:
    problems = problems_of(parse_text("page.md", UNRUNNABLE))
    assert [problem.split(":")[1] for problem in problems] == ["24", "1", "5", "20", "25", "10", "15"]
    assert "unknown doctest marker 'frobnicate'" in problems[0]
    assert "commands go in ```console blocks" in problems[1]
    assert "needs 'file NAME' or 'skip REASON'" in problems[2]
    assert "'skip' needs a reason" in problems[3]
    assert "must start with '$ '" in problems[4]
    assert "no later command shows the error of broken.yml" in problems[5]
    assert "notes.txt is written, but no later command uses it" in problems[6]


def test_commands_are_read_as_a_shell_reads_them() -> None:
    block = Block(
        "p.md", 1, "console", ["$ portcheck scan \\", "    127.0.0.1   # exits 1", "out", "", "$ ls"]
    )
    found = [(command.line, command.text, command.status, command.shown) for command in commands(block)]
    assert found == [(2, "portcheck scan \\\n    127.0.0.1   # exits 1", 1, ("out",)), (6, "ls", 0, ())]


def test_output_matching_follows_the_convention() -> None:
    actual = ["header", "a 1", "b 2", "c 3", "tail"]
    assert output_matches(("...", "b *", "..."), actual)
    assert output_matches(("header", "...", "tail"), actual)
    assert not output_matches(("header", "a 1"), actual)  # shown without "...": the output must be whole
    assert not output_matches(("...", "c 3", "b 2", "..."), actual)  # order counts
    assert not output_matches(("...", "a 1", "c 3", "..."), actual)  # lines shown together are consecutive
    assert normalise("web: syn-ack in 0.2 ms (1.19s)", "/x") == normalise(
        "web: syn-ack in 14 ms (3.5s)", "/x"
    )
    assert normalise("===== 1 passed in 1.19s ==========", "/x") == "=== 1 passed in <duration> ==="


@pytest.mark.parametrize("name", runnable_pages())
def test_page_runs(name: str, tmp_path: Path) -> None:
    why_not = namespaces_available()
    if why_not is not None:
        skip_or_fail(why_not, "PORTCHECK_REQUIRE_NETNS")
    page = parse(ROOT / name)
    assert not problems_of(page), "\n".join(problems_of(page))
    folder = tmp_path / "infra"
    folder.mkdir()
    namespace = Namespace()
    try:
        run_page(page, namespace, folder)
    finally:
        namespace.delete()


def _summary() -> str:
    treated = inventory_of_blocks()
    counts = Counter(what.split(":")[0] for _, what in treated)
    ran = sum(
        len(commands(block))
        for page in all_pages()
        for block in page.blocks
        if kind(page, block) == "command"
    )
    lines = [
        f"{len(treated)} blocks: {counts['command']} command blocks run ({ran} commands), "
        f"{counts['inventory'] + counts['invalid inventory']} inventories loaded "
        f"({counts['invalid inventory']} shown for their error), {counts['file']} files written for commands, "
        f"{counts['exempt']} exempt:"
    ]
    lines += [f"  {where}: {what[8:]}" for where, what in treated if what.startswith("exempt")]
    return "\n".join(lines)


if __name__ == "__main__":
    for where, what in inventory_of_blocks():
        print(f"{where}: {what}")
    print(_summary())
