"""Reading an inventory's YAML nodes: plain values only, every problem noted with its line.

The YAML is composed into nodes (safe-loader level: no tags, no objects) so that every value keeps the
line it came from. ``YamlReader`` turns nodes into values, refusing YAML 1.1's surprises (``0443`` is
octal, ``22:30`` base 60, ``yes`` a boolean), and keeps the problems found so far: a check that fails
is noted and the next one still runs. Must not import pytest, the engine or the probes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import yaml

from pytest_portcheck.inventory.model import InventoryError

_T = TypeVar("_T")
_P = ParamSpec("_P")
Entries = dict[str, tuple[yaml.Node, yaml.Node]]
"""A mapping's entries by key: (key node, value node)."""
_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
)


class YamlReader:
    """Values from an inventory's YAML nodes, each problem an ``InventoryError`` at its node's line;
    ``attempt`` notes a problem and goes on, so that a file is checked to its end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._constructor = yaml.SafeLoader("")
        self.problems: list[InventoryError] = []
        """Every problem found so far: a file is checked to the end and reports them all at once."""

    def attempt(self, fallback: _T, check: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run one check; its problem is noted and ``fallback`` stands in, so that the checks after it
        (the next key, entry or host) still run. A problem raised after the check itself noted some
        (an unknown key skipped, then a key found missing) is their consequence: only those are kept."""
        noted = len(self.problems)
        try:
            return check(*args, **kwargs)
        except InventoryError as exc:
            if len(self.problems) == noted:
                self.problems.append(exc)
            return fallback

    def note(self, node: yaml.Node | None, message: str) -> None:
        """A problem that does not stop the checks after it."""
        self.problems.append(self.error(node, message))

    def error(self, node: yaml.Node | None, message: str) -> InventoryError:
        return InventoryError(self.path, node.start_mark.line + 1 if node is not None else 0, message)

    def check_tag(self, node: yaml.Node) -> None:
        if node.tag not in _PLAIN_TAGS:
            raise self.error(node, f"YAML tag {node.tag!r} is not allowed: write plain values")

    def scalar(self, node: yaml.Node) -> object:
        self.check_tag(node)
        if not isinstance(node, yaml.ScalarNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
            raise self.error(node, f"expected a single value here, found {kind}")
        try:
            value = self._constructor.construct_object(node, deep=True)
        except (ValueError, yaml.YAMLError) as exc:  # e.g. a timestamp with month 13
            raise self.error(node, f"cannot read {node.value!r}: {exc}") from None
        if (
            not node.style
        ):  # quoted text is what it says; plain values go through YAML 1.1 rules (libyaml: "")
            self.refuse_surprises(node, value)
        return value

    def refuse_surprises(self, node: yaml.ScalarNode, value: object) -> None:
        """YAML 1.1 turns 0443 into 291 (octal), 22:30 into 1350 (base 60), 0x50 into 80 and yes/on
        into true: an inventory means none of these, so they are refused rather than read."""
        text = node.value
        if _LEADING_ZERO.fullmatch(text):
            octal = f" (YAML 1.1 reads it as the octal number {value})" if isinstance(value, int) else ""
            decimal = text.lstrip("+-").replace("_", "").lstrip("0") or "0"
            raise self.error(
                node,
                f"{text!r} starts with a zero{octal}: drop the zero ({decimal}), or in a port list "
                f'quote it ("{text}" is read as {decimal})',
            )
        if isinstance(value, bool) and text.lower() not in ("true", "false"):
            raise self.error(
                node,
                f"{text!r} is read by YAML as the boolean {str(value).lower()}: write true or false, "
                "or quote it if you mean text",
            )
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and not _PLAIN_NUMBER.fullmatch(text)
        ):
            raise self.error(
                node,
                f"{text!r} is read by YAML as the number {value}: write plain decimal numbers, or quote it",
            )

    def mapping(
        self, node: yaml.Node, what: str, allowed: tuple[str, ...]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping of 'key: value' lines")
        self.check_tag(node)
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            # A bad key is noted and left out; the other keys are still read and checked.
            self.attempt(None, self._entry, entries, key_node, value_node, what, allowed)
        return entries

    def _entry(
        self,
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        key_node: yaml.Node,
        value_node: yaml.Node,
        what: str,
        allowed: tuple[str, ...],
    ) -> None:
        key = self.scalar(key_node)
        if not isinstance(key, str):
            raise self.error(key_node, f"keys of {what} must be text, not {key!r}")
        if key in entries:
            first = entries[key][0].start_mark.line + 1
            raise self.error(key_node, f"{key!r} appears twice in {what} (first on line {first}): keep one")
        if allowed and key not in allowed:
            raise self.error(key_node, unknown_key_message(key, what, allowed))
        entries[key] = (key_node, value_node)

    def number(
        self, node: yaml.Node, what: str, *, integer: bool, minimum: float, above: bool, unit: str = "seconds"
    ) -> float:
        value = self.scalar(node)
        valid_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not valid_type:
            kind = "a whole number" if integer else f"a number of {unit}"
            raise self.error(node, f"{what} must be {kind}, not {value!r}")
        assert isinstance(value, (int, float))
        if (value <= minimum if above else value < minimum) or value != value or value == float("inf"):
            bound = f"more than {minimum:g}" if above else f"at least {minimum:g}"
            raise self.error(node, f"{what} must be {bound}, not {value!r}")
        return value


def unknown_key_message(key: str, what: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(allowed)}"
    return f"unknown key {key!r} in {what}: {hint}"
