"""The vocabulary a report format is declared in: field descriptors that check a parsed JSON document
and describe themselves, for error messages and for the documentation's field tables.

A declaration is a tree of kinds — ``Text``, ``Integer``, ``Number``, ``Boolean``, ``Choice``,
``Pattern``, ``Obj`` (named ``Field``s, each required or optional, nullable or not, with the change
that added it), ``ListOf`` and ``Row`` (a fixed array, the compact rows of a shard report). Checking
walks the document and raises ``ReportProblem`` for the first problem, naming it by its JSON path:
``$.results[3].port: expected an integer 0 to 65535, not "x"``. A key a declaration does not name is
left alone (a newer writer may add one); a missing optional key is the reader's default.
The formats themselves are declared in ``schema``.
Must not import anything of the package, nor pytest, yaml or json: the vocabulary stands alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class ReportProblem(ValueError):
    """The document is not a valid report; the message names the field by its JSON path."""


def shown(value: object) -> str:
    """A value as an error message quotes it: JSON's spelling, long text cut short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)[:40]
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:40] + "..."
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def member(path: str, key: str | int) -> str:
    """The JSON path of ``key`` (an object's key or an array's index) under ``path``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if key.isidentifier() else f'{path}["{key}"]'


def problem(path: str, expected: str, value: object) -> ReportProblem:
    return ReportProblem(f"{path}: expected {expected}, not {shown(value)}")


class Kind:
    """What a value must be: ``check`` raises ReportProblem naming ``path``; ``expected`` says it."""

    __slots__ = ()

    @property
    def expected(self) -> str:
        raise NotImplementedError

    def check(self, value: Any, path: str) -> None:
        raise NotImplementedError

    def load(self, value: Any) -> Any:
        """The checked value as the model holds it (the JSON value itself unless a kind says more)."""
        return value


MISSING: Any = object()
"""A field without a reader's default: a missing key leaves the model's own default."""


@dataclass(frozen=True, slots=True)
class Text(Kind):
    @property
    def expected(self) -> str:
        return "a string"

    def check(self, value: Any, path: str) -> None:
        if type(value) is not str:
            raise problem(path, "a string", value)


@dataclass(frozen=True, slots=True)
class Pattern(Kind):
    """Text that matches ``regex`` in full; ``described`` says what it is."""

    regex: str
    described: str

    @property
    def expected(self) -> str:
        return self.described

    def check(self, value: Any, path: str) -> None:
        if type(value) is not str or not re.fullmatch(self.regex, value):
            raise problem(path, self.described, value)


@dataclass(frozen=True, slots=True)
class Checked(Kind):
    """Text that a reader of its own must accept (``reader`` returns why not, possibly "", or None when
    it reads): a port spec, a date."""

    described: str
    reader: Callable[[str], str | None]

    @property
    def expected(self) -> str:
        return self.described

    def check(self, value: Any, path: str) -> None:
        if type(value) is not str:
            raise problem(path, self.described, value)
        why = self.reader(value)
        if why is not None:
            detail = f": {why}" if why else ""
            raise ReportProblem(f"{path}: expected {self.described}, not {shown(value)}{detail}")


@dataclass(frozen=True, slots=True)
class Converted(Kind):
    """A kind whose checked value the model holds converted (a date, a line read into an object)."""

    kind: Kind
    reader: Callable[[Any], Any]

    @property
    def expected(self) -> str:
        return self.kind.expected

    def check(self, value: Any, path: str) -> None:
        self.kind.check(value, path)

    def load(self, value: Any) -> Any:
        return self.reader(value)


@dataclass(frozen=True, slots=True)
class Boolean(Kind):
    @property
    def expected(self) -> str:
        return "true or false"

    def check(self, value: Any, path: str) -> None:
        if type(value) is not bool:
            raise problem(path, "true or false", value)


@dataclass(frozen=True, slots=True)
class Integer(Kind):
    minimum: int = 0
    maximum: int | None = None

    @property
    def expected(self) -> str:
        if self.maximum == self.minimum:
            return str(self.minimum)
        if self.maximum is None:
            return f"an integer of at least {self.minimum}"
        return f"an integer {self.minimum} to {self.maximum}"

    def check(self, value: Any, path: str) -> None:
        too_large = self.maximum is not None and type(value) is int and value > self.maximum
        if type(value) is not int or value < self.minimum or too_large:
            raise problem(path, self.expected, value)


@dataclass(frozen=True, slots=True)
class Number(Kind):
    """A finite number (integer or not) of at least 0, or more than 0 when ``positive``."""

    positive: bool = False

    @property
    def expected(self) -> str:
        return "a number more than 0" if self.positive else "a number of at least 0"

    def check(self, value: Any, path: str) -> None:
        if type(value) not in (int, float) or value < 0 or (self.positive and value == 0):
            raise problem(path, self.expected, value)


@dataclass(frozen=True, slots=True)
class Choice(Kind):
    values: tuple[str, ...]
    enum: Callable[[str], Any] | None = None
    """The model's enum: a value is read as its member."""

    @property
    def expected(self) -> str:
        return "one of " + ", ".join(self.values)

    def check(self, value: Any, path: str) -> None:
        if type(value) is not str or value not in self.values:
            raise problem(path, self.expected, value)

    def load(self, value: Any) -> Any:
        return value if self.enum is None else self.enum(value)


@dataclass(frozen=True, slots=True)
class Field:
    """One key of an object: its kind, whether it must be there and may be null, and what it holds."""

    name: str
    kind: Kind
    required: bool = False
    nullable: bool = False
    doc: str = ""
    since: str = ""
    """The change that added the key, where it came after the first reports (readers default it)."""
    default: Any = MISSING
    """What a reader takes when the key is missing, where the model has no default of its own."""
    attribute: str = ""
    """The model's name for it, where it differs (``rate_pps`` is ``AddressQuality.rate``)."""
    read: bool = True
    """False for what is written for people or derived (``limited``), not a model argument."""

    def check(self, value: Any, path: str) -> None:
        if value is None and self.nullable:
            return
        self.kind.check(value, path)


@dataclass(frozen=True, slots=True)
class Obj(Kind):
    """A JSON object with these fields (keys it does not name are left alone)."""

    fields: tuple[Field, ...]
    model: Callable[..., Any] | None = None
    """What ``load`` builds (keyword arguments by field); None: a dictionary of the read fields."""
    index: dict[str, Field] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.index.update((f.name, f) for f in self.fields)

    @property
    def expected(self) -> str:
        return "an object"

    def check(self, value: Any, path: str) -> None:
        if type(value) is not dict:
            raise problem(path, "an object", value)
        for declared in self.fields:
            if declared.name in value:
                declared.check(value[declared.name], member(path, declared.name))
            elif declared.required:
                where = member(path, declared.name)
                raise ReportProblem(f"{where}: missing (expected {_nullable(declared)})")

    def keys(self) -> frozenset[str]:
        return frozenset(self.index)

    def load(self, value: Any) -> Any:
        """The model of a checked object: each read field by its attribute name, nested kinds loaded,
        a missing key its declared default (or the model's own)."""
        arguments: dict[str, Any] = {}
        for declared in self.fields:
            if not declared.read:
                continue
            raw = value.get(declared.name, MISSING)
            if raw is MISSING:
                if declared.default is MISSING:
                    continue
                raw = declared.default
            elif raw is not None:
                raw = declared.kind.load(raw)
            arguments[declared.attribute or declared.name] = raw
        return arguments if self.model is None else self.model(**arguments)


def _nullable(declared: Field) -> str:
    return f"{declared.kind.expected} or null" if declared.nullable else declared.kind.expected


@dataclass(frozen=True, slots=True)
class ListOf(Kind):
    item: Kind

    @property
    def expected(self) -> str:
        return "a list"

    def check(self, value: Any, path: str) -> None:
        if type(value) is not list:
            raise problem(path, "a list", value)
        check = self.item.check
        for index, element in enumerate(value):
            check(element, f"{path}[{index}]")

    def load(self, value: Any) -> Any:
        load = self.item.load
        return tuple(load(element) for element in value)


@dataclass(frozen=True, slots=True)
class Row(Kind):
    """A fixed array, each position a ``Field`` (named for the message); the last ``optional`` ones may
    be left out."""

    items: tuple[Field, ...]
    optional: int = 0

    @property
    def expected(self) -> str:
        names = [f.name for f in self.items]
        if self.optional:
            head, tail = names[: -self.optional], names[-self.optional :]
            return f"an array [{', '.join(head)}(, {', '.join(tail)})]"
        return f"an array [{', '.join(names)}]"

    def check(self, value: Any, path: str) -> None:
        if type(value) is not list or not len(self.items) - self.optional <= len(value) <= len(self.items):
            raise problem(path, self.expected, value)
        for index, element in enumerate(value):
            declared = self.items[index]
            declared.check(element, f"{path}[{index}]")

    def load(self, value: Any) -> Any:
        return tuple(None if v is None else f.kind.load(v) for f, v in zip(self.items, value, strict=False))


def described(kind: Kind, nullable: bool = False) -> str:
    """A kind as a field table shows it."""
    text = kind.expected
    if isinstance(kind, ListOf):
        text = f"a list of {_item_name(kind.item)}"
    return f"{text} or null" if nullable else text


def _item_name(kind: Kind) -> str:
    if isinstance(kind, Obj):
        return "objects"
    if isinstance(kind, Row):
        return kind.expected.replace("an array ", "arrays ")
    return "strings" if isinstance(kind, Text) else kind.expected


def field_rows(kind: Obj, path: str = "$") -> list[tuple[str, str, str, str]]:
    """(JSON path, kind, required or since, meaning) of every field under ``kind``, depth first: the
    documentation's table, generated from the declaration so that the two cannot differ."""
    rows: list[tuple[str, str, str, str]] = []
    for declared in kind.fields:
        where = member(path, declared.name)
        presence = "required" if declared.required else "optional"
        if declared.since:
            presence += f" (since {declared.since})"
        rows.append((where, described(declared.kind, declared.nullable), presence, declared.doc))
        inner: Kind = declared.kind
        suffix = ""
        if isinstance(inner, ListOf):
            inner, suffix = inner.item, "[]"
        if isinstance(inner, Obj):
            rows += field_rows(inner, where + suffix)
    return rows


def walk(value: Any, path: str = "$") -> Sequence[tuple[str, Any]]:
    """Every (path, scalar) of a document (used to find where a refused number sits)."""
    found: list[tuple[str, Any]] = []
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            stack += [(member(where, key), inner) for key, inner in reversed(item.items())]
        elif isinstance(item, list):
            stack += [(f"{where}[{index}]", inner) for index, inner in reversed(list(enumerate(item)))]
        else:
            found.append((where, item))
    return found
