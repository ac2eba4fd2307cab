"""``record``: the value classes of the scan path behave as frozen slotted dataclasses would."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_portcheck.engine import PortState, ProbeResult, ScanSettings, ScanStats
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import ServiceInfo, TlsInfo
from pytest_portcheck.record import as_dict, field, record, record_fields, replace


@record
class Point:
    x: int
    y: int = 0
    label: str | None = None

    @property
    def norm(self) -> int:
        return abs(self.x) + abs(self.y)


@record(frozen=False)
class Counter:
    count: int = 0
    seen: list[str] = field(default_factory=list)


@record(frozen=False, eq=False)
class Handle:
    name: str


@record
class Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError(f"negative: {self.value}")


def test_init_takes_positional_and_keyword_arguments_with_defaults() -> None:
    assert Point(1) == Point(x=1, y=0, label=None)
    assert Point(1, 2, "a").label == "a"
    assert Point(1, label="b").y == 0
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, "a", 4)  # type: ignore[call-arg]


def test_equality_and_hash_follow_the_fields_in_order() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(2, 1)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert len({Point(1, 2), Point(1, 2), Point(1, 3)}) == 2
    assert Point(1, 2) != (1, 2, None)  # type: ignore[comparison-overlap]  # another class is never equal, however alike
    assert Point(1).__eq__(Checked(1)) is NotImplemented


def test_repr_names_the_class_and_every_field() -> None:
    assert repr(Point(1, 2, "a")) == "Point(x=1, y=2, label='a')"
    assert repr(ProbeResult("h", None, Protocol.TCP, 22, PortState.OPEN, "syn-ack")).startswith(
        "ProbeResult(host='h', address=None, proto=<Protocol.TCP: 'tcp'>, port=22, "
    )


def test_frozen_records_refuse_assignment_and_deletion() -> None:
    point = Point(1)
    with pytest.raises(AttributeError, match="frozen"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del point.x
    with pytest.raises(AttributeError):
        point.other = 1  # type: ignore[attr-defined]
    assert point == Point(1)


def test_records_have_slots_and_no_instance_dict() -> None:
    assert vars(Point)["__slots__"] == ("x", "y", "label")
    assert not hasattr(Point(1), "__dict__")
    assert Point.__match_args__ == ("x", "y", "label")
    assert Point(3, -4).norm == 7  # methods and properties of the declaration stay


def test_mutable_records_assign_and_are_unhashable_unless_eq_is_off() -> None:
    counter = Counter()
    counter.count += 1
    counter.seen.append("a")
    assert counter == Counter(1, ["a"])
    assert Counter.__hash__ is None
    with pytest.raises(AttributeError):
        counter.other = 1
    one, two = Handle("a"), Handle("a")
    assert one != two and one == one  # identity, like dataclass(eq=False)
    assert len({one, two}) == 2


def test_default_factory_makes_a_fresh_value_for_each_instance() -> None:
    first, second = Counter(), Counter()
    first.seen.append("x")
    assert second.seen == []
    assert ScanStats().addresses is not ScanStats().addresses


def test_post_init_runs_on_construction_and_on_replace() -> None:
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)
    with pytest.raises(ValueError, match="negative"):
        replace(Checked(1), value=-2)
    with pytest.raises(Exception, match="timeout"):
        ScanSettings(timeout=0)


def test_replace_changes_only_what_it_names() -> None:
    point = Point(1, 2, "a")
    assert replace(point, y=5) == Point(1, 5, "a")
    assert replace(point) == point
    assert point == Point(1, 2, "a")
    with pytest.raises(TypeError, match="no field 'z'"):
        replace(point, z=1)


def test_copy_pickle_and_deepcopy_round_trip() -> None:
    result = ProbeResult("h", "127.0.0.1", Protocol.UDP, 53, PortState.OPEN_FILTERED, "no-response", None, 2)
    for clone in (copy.copy(result), copy.deepcopy(result), pickle.loads(pickle.dumps(result))):
        assert clone == result and type(clone) is ProbeResult


def test_as_dict_and_fields_follow_the_declaration() -> None:
    tls = TlsInfo("TLSv1.3", "c", "CN=a", "CN=b", "2030-01-01T00:00:00+00:00", 100, False)
    info = ServiceInfo("https", "HTTP/1.1 200 OK", tls=tls)
    assert record_fields(TlsInfo)[:3] == ("version", "cipher", "subject")
    assert record_fields(info) == record_fields(ServiceInfo)
    document = as_dict(info)
    assert document["tls"] == dict(
        zip(record_fields(TlsInfo), (getattr(tls, n) for n in record_fields(tls)), strict=True)
    )
    assert list(document) == list(record_fields(ServiceInfo))


def test_declarations_a_record_cannot_honour_are_refused() -> None:
    with pytest.raises(TypeError, match="follows a default"):

        @record
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]

    with pytest.raises(TypeError, match="inherit"):

        @record
        class Child(Point):
            z: int = 0

    with pytest.raises(TypeError, match="super"):

        @record
        class Super:
            a: int

            def method(self) -> str:
                return str(super())


@given(
    x=st.integers(),
    y=st.integers(),
    label=st.none() | st.text(max_size=5),
    other=st.integers(),
)
def test_records_agree_with_the_tuple_of_their_fields(x: int, y: int, label: str | None, other: int) -> None:
    point = Point(x, y, label)
    assert (point == Point(other, y, label)) == (x == other)
    assert hash(point) == hash((x, y, label))
    assert replace(point, x=other) == Point(other, y, label)
    assert eval(repr(point)) == point  # a repr of ints and strings


class Outer:
    @record
    class Inner:
        value: int


def test_nested_records_keep_their_qualified_name() -> None:
    inner = Outer.Inner(3)
    assert repr(inner) == "Outer.Inner(value=3)"
    assert pickle.loads(pickle.dumps(inner)) == inner


def test_a_mutable_plain_default_is_refused() -> None:
    with pytest.raises(TypeError, match="mutable default"):

        @record
        class Shared:
            items: list[int] = []  # noqa: RUF012 - the mistake under test
