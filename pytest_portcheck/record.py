"""Value classes without the ``dataclasses`` module: ``@record`` builds slotted, frozen classes.

Why not ``dataclasses``: importing it pulls in ``inspect`` (and ``ast``, ``dis``, ``tokenize``), about
10 ms, and each decorated class costs another millisecond or so; ``portcheck scan`` of a few ports
has about 35 ms in all to match nmap. ``record`` reads the same class declarations (annotated fields,
defaults, ``field(default_factory=...)``, ``__post_init__``) and makes a new class with
``__slots__``, an ``__init__`` (generated once per class; a frozen one sets each slot through its
descriptor, faster than a frozen dataclass's ``object.__setattr__``: that matters for the one
``ProbeResult`` per port), ``__eq__``/``__hash__`` over the fields in order, ``__repr__``,
``__match_args__`` and ``__reduce__`` (copy and pickle). Frozen classes (the default) refuse
assignment and deletion. Type checkers see ``record`` as a dataclass transform, so fields, defaults
and frozenness are checked as for a dataclass; ``replace``, ``record_fields`` and ``as_dict`` stand
in for the module's functions.

Not supported (refused with TypeError where it would silently go wrong): ``ClassVar``/``InitVar``
fields, inheritance between records, zero-argument ``super()`` in a record's methods, a list, dict or
set as a plain default. Copies and unpickling go through ``__init__``, so ``__post_init__`` runs again
for them: keep it to checks.
Imports only ``operator`` (loaded at start-up anyway); must not import dataclasses, typing or inspect.
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False  # typing costs ~3 ms to import; type checkers treat this name as true
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from typing_extensions import dataclass_transform

    T = TypeVar("T")
    C = TypeVar("C", bound=type)
else:

    def dataclass_transform(**_options: object) -> Callable[[T], T]:
        return lambda function: function


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A default made afresh for each instance (a dict, a list, the time), as dataclasses' ``field``."""
    return _Factory(default_factory)  # type: ignore[return-value]  # a marker that __init__ replaces


_NO_DEFAULT = object()


def _declared_fields(cls: type) -> list[tuple[str, object]]:
    """(name, default or _NO_DEFAULT) of each annotated field, in declaration order."""
    fields: list[tuple[str, object]] = []
    # The attribute, not the class dict: Python 3.14 makes class annotations on demand.
    for name, annotation in cls.__annotations__.items():
        if "ClassVar" in str(annotation) or "InitVar" in str(annotation):
            raise TypeError(f"{cls.__qualname__}.{name}: ClassVar and InitVar fields are not supported")
        default = cls.__dict__.get(name, _NO_DEFAULT)
        if isinstance(default, (list, dict, set)):  # one object shared by every instance
            raise TypeError(f"{cls.__qualname__}.{name}: a mutable default; use field(default_factory=...)")
        if default is _NO_DEFAULT and fields and fields[-1][1] is not _NO_DEFAULT:
            raise TypeError(f"{cls.__qualname__}: field {name!r} without a default follows a default")
        fields.append((name, default))
    return fields


def _init_source(cls: type, fields: list[tuple[str, object]], frozen: bool) -> tuple[str, dict[str, object]]:
    """The source of a function that returns ``__init__``, and the names its closure needs."""
    params, lines = [], []
    names: dict[str, object] = {"_NO_DEFAULT": _NO_DEFAULT}
    for name, default in fields:
        if isinstance(default, _Factory):
            names[f"_make_{name}"] = default.make
            params.append(f"{name}=_NO_DEFAULT")
            lines.append(f"if {name} is _NO_DEFAULT: {name} = _make_{name}()")
        elif default is not _NO_DEFAULT:
            names[f"_default_{name}"] = default
            params.append(f"{name}=_default_{name}")
        else:
            params.append(name)
        if frozen:  # a slot's descriptor sets the value where __setattr__ refuses, faster than object's
            names[f"_set_{name}"] = cls.__dict__[name].__set__
            lines.append(f"_set_{name}(self, {name})")
        else:  # a plain attribute store is faster still where __setattr__ is object's
            lines.append(f"self.{name} = {name}")
    if hasattr(cls, "__post_init__"):
        lines.append("self.__post_init__()")
    body = "".join(f"  {line}\n" for line in lines) or "  pass\n"
    signature = ", ".join(["self", *params])
    source = f"def _closure({', '.join(names)}):\n def __init__({signature}):\n{body} return __init__\n"
    return source, names


def _values(names: tuple[str, ...]) -> Callable[[object], tuple[object, ...]]:
    if len(names) > 1:
        return attrgetter(*names)  # a tuple for two names or more
    return lambda instance: tuple(getattr(instance, name) for name in names)


def _add_methods(cls: type, names: tuple[str, ...], frozen: bool, eq: bool) -> None:
    values = _values(names)

    def __repr__(self: object) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({shown})"

    def __reduce__(self: object) -> tuple[type, tuple[object, ...]]:
        return type(self), values(self)

    def __eq__(self: object, other: object) -> bool:
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented

    def __hash__(self: object) -> int:
        return hash(values(self))

    def __setattr__(self: object, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__qualname__} is frozen")

    def __delattr__(self: object, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__qualname__} is frozen")

    methods: dict[str, object] = {"__repr__": __repr__, "__reduce__": __reduce__, "__match_args__": names}
    if eq:
        methods.update(__eq__=__eq__, __hash__=__hash__ if frozen else None)
    if frozen:
        methods.update(__setattr__=__setattr__, __delattr__=__delattr__)
    for name, method in methods.items():
        if cls.__dict__.get(name) is None:  # a method the class writes itself stays
            setattr(cls, name, method)


def _build(cls: C, frozen: bool, eq: bool) -> C:
    if cls.__bases__ != (object,):
        raise TypeError(f"{cls.__qualname__}: a record cannot inherit (write the fields out)")
    fields = _declared_fields(cls)
    names = tuple(name for name, _ in fields)
    namespace = {key: value for key, value in cls.__dict__.items() if key not in names}
    for key in ("__dict__", "__weakref__"):
        namespace.pop(key, None)
    for value in namespace.values():
        code = getattr(getattr(value, "__func__", value), "__code__", None)
        if code is not None and "__class__" in code.co_freevars:
            raise TypeError(f"{cls.__qualname__}: zero-argument super() cannot work in a record")
    namespace["__slots__"] = names
    namespace["__qualname__"] = cls.__qualname__  # nested classes keep their path (repr, pickle)
    namespace["__record_fields__"] = names
    built = type(cls)(cls.__name__, cls.__bases__, namespace)
    source, closure = _init_source(built, fields, frozen)
    scope: dict[str, Any] = {}
    exec(source, scope)  # the generated __init__: fast, with the class's own signature
    init = scope["_closure"](**closure)
    init.__qualname__ = f"{built.__qualname__}.__init__"
    built.__init__ = init  # type: ignore[misc]
    _add_methods(built, names, frozen, eq)
    return built


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: C | None = None, /, *, frozen: bool = True, eq: bool = True) -> Any:
    """Make ``cls`` a slotted value class (frozen unless ``frozen=False``; ``eq=False`` keeps identity)."""
    if cls is None:
        return lambda inner: _build(inner, frozen, eq)
    return _build(cls, frozen, eq)


def record_fields(value: object) -> tuple[str, ...]:
    """The field names of a record class or instance, in declaration order."""
    names: tuple[str, ...] = value.__record_fields__  # type: ignore[attr-defined]
    return names


def replace(value: T, /, **changes: object) -> T:
    """A copy of the record ``value`` with some fields changed (``__post_init__`` checks run again)."""
    names = record_fields(value)
    unknown = sorted(changes.keys() - set(names))
    if unknown:
        raise TypeError(f"{type(value).__qualname__} has no field {', '.join(map(repr, unknown))}")
    merged = {name: changes[name] if name in changes else getattr(value, name) for name in names}
    return type(value)(**merged)


def as_dict(value: object) -> dict[str, Any]:
    """The fields of a record as a dict, records held directly in a field as dicts too; unlike
    ``dataclasses.asdict``, lists and dicts are neither copied nor entered."""
    return {
        name: as_dict(item) if hasattr(item, "__record_fields__") else item
        for name in record_fields(value)
        for item in (getattr(value, name),)
    }
