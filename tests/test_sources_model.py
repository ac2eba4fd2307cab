"""The sources package's shared pieces: the exposure model, the error that holds every problem, the
YAML node helpers (raw text, YAML 1.1 traps, merge keys), the JSON decoder that keeps offsets, and
the package's import rule (it is moved under inventory/ later: it may import only ports and PyYAML)."""

from __future__ import annotations

import ast
import gc
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import pytest_portcheck.inventory.sources as sources
from pytest_portcheck.inventory.sources.compose import _short_syntax
from pytest_portcheck.inventory.sources.interpolation import InterpolationProblem, interpolate, parse_env_file
from pytest_portcheck.inventory.sources.locatedjson import LineIndex, LocatedObject, load_located
from pytest_portcheck.inventory.sources.model import (
    Exposure,
    Origin,
    Reach,
    SourceError,
    reach_of_bind,
    reach_of_peer,
)
from pytest_portcheck.inventory.sources.yamlnodes import (
    MappingProblem,
    NodeLoader,
    is_sexagesimal,
    mapping,
    paused_gc,
    plain_int,
    yaml11_bool,
)
from pytest_portcheck.ports import Protocol, parse_port_spec

PACKAGE = Path(sources.__file__).resolve().parent


def test_the_package_imports_only_the_standard_library_yaml_primitives_and_itself() -> None:
    allowed_own = {"pytest_portcheck.ports", "pytest_portcheck.fileproblem", "pytest_portcheck.inventory.sources"}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        doc = (ast.get_docstring(tree) or "").lower()
        assert "imports only" in doc or "must not import" in doc, path.name
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "pytest_portcheck":
                    assert any(name == own or name.startswith(own + ".") for own in allowed_own), (
                        path.name,
                        name,
                    )
                else:
                    assert top == "yaml" or top in __import__("sys").stdlib_module_names, (path.name, name)


def test_an_exposure_speaks_the_inventory_port_syntax() -> None:
    origin = Origin("c.yml", 3, 'service web ports[0] "3000-3002:3000-3002"', "web")
    exposure = Exposure(Protocol.UDP, 3000, 3002, None, Reach.EVERYONE, None, origin)
    assert exposure.spec == "3000-3002/udp"
    assert parse_port_spec(exposure.spec) == [(Protocol.UDP, port) for port in exposure.ports]
    assert str(origin) == 'c.yml:3: service web ports[0] "3000-3002:3000-3002"'
    with pytest.raises(AttributeError):
        exposure.first = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="1-0 is not a range of ports"):
        Exposure(Protocol.TCP, 1, 0, None, Reach.EVERYONE, None, origin)


def test_reach() -> None:
    assert reach_of_bind(None) is Reach.EVERYONE
    assert reach_of_bind("0.0.0.0") is Reach.EVERYONE
    assert reach_of_bind("127.0.0.5") is Reach.THIS_HOST
    assert reach_of_bind("::1") is Reach.THIS_HOST
    assert reach_of_bind("lb.example.com") is Reach.EVERYONE
    assert reach_of_peer("0.0.0.0/0") is Reach.EVERYONE
    assert reach_of_peer("::/0") is Reach.EVERYONE
    assert reach_of_peer("10.0.0.0/8") is Reach.NETWORK
    assert reach_of_peer("sg-123") is Reach.NETWORK


def test_all_problems_are_one_error_in_order() -> None:
    problems = [
        SourceError("a.yml", 3, "first: fix it"),
        SourceError("a.yml", 0, "whole file"),
        SourceError("b.yml", 9, "x"),
    ]
    error = SourceError.all_of(problems)
    assert error.problems == tuple(problems)
    assert str(error).splitlines() == ["a.yml:3: first: fix it", "a.yml: whole file", "b.yml:9: x"]
    assert SourceError.all_of(problems[:1]) is problems[0]


def node(text: str) -> yaml.Node:
    composed = yaml.compose(text, Loader=NodeLoader)
    assert composed is not None
    return composed


def test_scalars_are_read_from_their_text() -> None:
    values = node("[22:22, '22:22', 0443, 80, '80', yes, 'yes', on, true, 1_000]").value
    assert [is_sexagesimal(value) for value in values[:3]] == [True, False, False]
    assert [plain_int(value) for value in values[2:6]] == [443, 80, None, None]
    assert [yaml11_bool(value) for value in values[5:9]] == [True, None, True, True]
    assert values[0].value == "22:22"  # never the number 1342


def test_merge_keys_and_duplicate_keys() -> None:
    root = node("base: &b {a: 1, b: 2}\nother: &o {b: 9, c: 3}\nm:\n  <<: [*b, *o]\n  a: 0\n")
    merged = mapping(mapping(root)["m"][1])  # type: ignore[arg-type]
    assert {key: value.value for key, (_, value) in merged.items()} == {"a": "0", "b": "2", "c": "3"}
    with pytest.raises(MappingProblem, match="given twice") as raised:
        mapping(node("a: 1\nb: 2\na: 3\n"))  # type: ignore[arg-type]
    assert raised.value.line == 3


def test_interpolation() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert (
        interpolate("$$A ${A} $A ${EMPTY:-d} ${EMPTY-d} ${B:-${A}x} ${A:+r} ${B+r}", env) == "$A 1 1 d  1x r "
    )
    for bad, words in [("${B}", "no value and no default"), ("${B:?need B}", "need B"), ("${EMPTY:?}", "is empty"),
                       ("${A", "never closed"), ("$ 1", "starts no variable"), ("${A:x}", "unknown operator")]:  # fmt: skip
        with pytest.raises(InterpolationProblem, match=words):
            interpolate(bad, env)


def test_env_file() -> None:
    text = '# c\nexport A=1\nB = \'x y\' \nC="q\\"${A}"\nD=v # comment\nE=${A}2\nbad line\n'
    values, problems = parse_env_file(text, {"A": "override"})
    assert values == {"A": "1", "B": "x y", "C": 'q"override', "D": "v", "E": "override2"}
    assert problems == [(7, "cannot read 'bad line': write KEY=VALUE")]


def test_json_objects_know_their_line() -> None:
    text = '{\n  "a": [\n    {"x": 1},\n    {\n      "y": {}\n    }\n  ]\n}\n'
    document = load_located(text)
    lines = LineIndex(text)
    assert isinstance(document, LocatedObject) and lines.line_at(document.offset) == 1
    assert [lines.line_at(item.offset) for item in document["a"]] == [3, 4]
    assert lines.line_at(document["a"][1]["y"].offset) == 5
    assert document == json.loads(text)


def test_the_garbage_collector_is_restored_however_a_reading_ends() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # it was off: it stays off
    finally:
        gc.enable()


@given(st.text(max_size=40))
def test_an_escaped_text_interpolates_to_itself(text: str) -> None:
    assert interpolate(text.replace("$", "$$"), {}) == text


ports = st.integers(min_value=1, max_value=65535)


@given(
    host_ip=st.sampled_from([None, "127.0.0.1", "0.0.0.0", "::1", "::", "2001:db8::7"]),
    published=st.one_of(st.none(), st.tuples(ports, st.integers(0, 5))),
    target=st.tuples(ports, st.integers(0, 5)),
    protocol=st.sampled_from(["tcp", "udp", None]),
)
def test_the_short_port_syntax_round_trips(
    host_ip: str | None, published: tuple[int, int] | None, target: tuple[int, int], protocol: str | None
) -> None:
    def span(pair: tuple[int, int]) -> tuple[int, int]:
        return pair[0], min(pair[0] + pair[1], 65535)

    def written(pair: tuple[int, int]) -> str:
        low, high = span(pair)
        return str(low) if low == high else f"{low}-{high}"

    text = written(target)
    if published is not None or host_ip is not None:
        text = f"{written(published) if published else ''}:{text}"
    if host_ip is not None:
        text = f"[{host_ip}]:{text}" if ":" in host_ip else f"{host_ip}:{text}"
    if protocol is not None:
        text += f"/{protocol}"
    assert _short_syntax(text) == (
        host_ip,
        span(published) if published else None,
        span(target),
        protocol or "tcp",
    )
