"""The wire format alone (no Ray): what crosses as itself, what is refused, what is rebuilt."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from actoros import ActorRef, ActorStopped, AskTimeout
from actoros.cluster.wire import (
    REPLY,
    Codec,
    Frame,
    NodeUnreachable,
    NotPortable,
    RemoteError,
    resolve_stream,
    type_tag,
)
from actoros.core.stream import ReplyStream
from actoros.inference.request import CompletionStream

from .actors import Carrier, Opaque, Point

pytestmark = pytest.mark.timeout(10)


class Ref(ActorRef):
    """A stand-in ref: the codec only asks a ref for its key and makes refs from keys."""

    __slots__ = ("key",)

    def __init__(self, node: str, path: str) -> None:
        self.key = (node, path)


class Refs:
    def __init__(self) -> None:
        self.made: dict[tuple[str, str], Ref] = {}

    def key(self, ref: ActorRef) -> tuple[str, str]:
        return ref.key  # type: ignore[attr-defined,no-any-return]

    def make(self, node: str, path: str) -> Ref:
        return self.made.setdefault((node, path), Ref(node, path))


class WithRef(msgspec.Struct, frozen=True):
    to: ActorRef
    note: str


def codec(allow_pickle: bool = False) -> tuple[Codec, Refs]:
    refs = Refs()
    return Codec("a", refs.key, refs.make, allow_pickle), refs


def roundtrip(c: Codec, value: Any) -> Any:
    tag, body = c.body(value)
    return c.decode_body(tag, bytes(body))


@pytest.mark.parametrize(
    "value", ["text", 3, 2.5, True, None, b"\x00\x01", [1, "a", None], {"k": [1, {"n": 2.0}]}]
)
def test_plain_values_cross_as_themselves(value: Any) -> None:
    c, _ = codec()
    assert roundtrip(c, value) == value


def test_a_struct_crosses_as_its_own_class() -> None:
    c, _ = codec()
    back = roundtrip(c, Point(1, 2, "p"))
    assert type(back) is Point and back == Point(1, 2, "p")


def test_an_any_field_with_plain_values_crosses() -> None:
    c, _ = codec()
    assert roundtrip(c, Carrier({"a": [1, 2]})) == Carrier({"a": [1, 2]})


def test_refs_cross_inside_any_and_typed_fields() -> None:
    c, refs = codec()
    target = refs.make("b", "/workers/w1")
    assert roundtrip(c, Carrier(target)).value is target
    back = roundtrip(c, WithRef(target, "x"))
    assert back.to is target and back.note == "x"


@pytest.mark.parametrize(
    "value",
    [
        (1, "a"),
        {1, 2},
        frozenset({"x"}),
        Carrier((1, 2)),
        Carrier(Point(1, 2)),
        [Point(1, 2), Point(3, 4, "b")],
        {"points": (Point(0, 0),), "nested": [Carrier({"t": (1,)})]},
        Carrier([WithRef(Ref("b", "/w"), "n")]),
    ],
)
def test_what_msgpack_alone_would_change_crosses_boxed_as_itself(value: Any) -> None:
    c, refs = codec()
    refs.made[("b", "/w")] = Ref("b", "/w")
    tag, _ = c.body(value)
    assert tag == "!boxed"
    back = roundtrip(c, value)
    if isinstance(value, Carrier) and isinstance(value.value, list):  # refs compare by identity
        assert back.value[0].to is refs.made[("b", "/w")]
        return
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (object(), "object"),
        (Carrier(object()), "object"),
        ({"f": len}, "builtin_function_or_method"),
    ],
)
def test_what_cannot_cross_is_refused_with_the_fix(value: Any, why: str) -> None:
    c, _ = codec()
    with pytest.raises(NotPortable, match="cannot cross to another node") as raised:
        c.body(value)
    assert why in str(raised.value)
    assert "cluster.pickle: true" in str(raised.value)


def test_the_declared_pickle_fallback_carries_it_with_its_refs() -> None:
    c, refs = codec(allow_pickle=True)
    target = refs.make("b", "/x")
    back = roundtrip(c, Carrier(Opaque(3, target)))
    assert type(back.value) is Opaque
    assert back.value.n == 3 and back.value.ref is target


def test_what_not_even_pickle_carries_is_refused() -> None:
    c, _ = codec(allow_pickle=True)
    with pytest.raises(NotPortable, match="even as pickle"):
        c.body(lambda: None)


@pytest.mark.parametrize("error", [ValueError("bad"), ActorStopped("gone"), AskTimeout("late")])
def test_errors_are_rebuilt_as_their_own_type(error: BaseException) -> None:
    c, _ = codec()
    tag, body = c.error(error)
    back = c.decode_error(tag, bytes(body))
    assert type(back) is type(error) and str(back) == str(error)


def test_an_error_whose_init_takes_more_than_its_message_keeps_its_type() -> None:
    # the gateway answers a PromptTooLong from an engine on another node with its 400
    from actoros.inference.errors import PromptTooLong

    c, _ = codec()
    error = PromptTooLong(3000, 256, 2048)
    tag, body = c.error(error)
    back = c.decode_error(tag, bytes(body))
    assert type(back) is PromptTooLong and str(back) == str(error)


def test_an_error_that_cannot_be_rebuilt_is_a_remote_error() -> None:
    c, _ = codec()
    back = c.decode_error("no.such.module:Err", msgspec.msgpack.encode("it broke"))
    assert isinstance(back, RemoteError) and "no.such.module:Err: it broke" in str(back)


def test_a_tag_never_resolves_to_something_that_is_not_a_struct() -> None:
    c, _ = codec()
    with pytest.raises(NotPortable, match="not a Struct"):
        c.decode_body("os:system", msgspec.msgpack.encode(["echo hi"]))


def test_a_batch_carries_its_source_sequence_and_frames() -> None:
    c, _ = codec()
    tag, body = c.body("hi")
    batch = c.decode_batch(c.batch(7, [Frame(REPLY, "", 3, tag, body)]))
    assert (batch.src, batch.seq, len(batch.frames)) == ("a", 7, 1)
    frame = batch.frames[0]
    assert c.decode_body(frame.tag, frame.body) == "hi" and frame.corr == 3


def test_an_unreachable_node_ends_an_ask_as_a_stopped_actor_does() -> None:
    assert issubclass(NodeUnreachable, ActorStopped)


# -- streamed replies ------------------------------------------------------------------------


class Lines(ReplyStream[str, int]):
    """A stream as the cluster carries one: ``__init__(label, on_close)``."""

    __slots__ = ()

    def __init__(self, label: str, on_close: Callable[[], None]) -> None:
        super().__init__(int, on_close, label)


class NumberedLines(Lines):
    """A subclass of a subclass: found as well."""

    __slots__ = ()


@pytest.mark.parametrize("cls", [Lines, NumberedLines, CompletionStream])
def test_a_stream_crosses_as_its_class_and_label(cls: type[Any]) -> None:
    c, _ = codec()
    tag, body = c.stream(cls("req-7", lambda: None))
    assert tag == type_tag(cls)
    assert c.decode_stream(tag, bytes(body)) == (cls, "req-7")


def test_a_bare_reply_stream_is_refused_at_the_sender() -> None:
    c, _ = codec()
    with pytest.raises(NotPortable, match=r"subclass whose __init__ takes \(label, on_close\)"):
        c.stream(ReplyStream(int, lambda: None, "x"))


@pytest.mark.parametrize(
    "tag",
    [
        "collections:OrderedDict",
        "os:system",
        type_tag(Point),
        "actoros.core.stream:ReplyStream",  # only its subclasses: the base takes a final type
        "no.such.module:Stream",
    ],
)
def test_a_stream_tag_resolves_only_to_a_reply_stream_subclass(tag: str) -> None:
    with pytest.raises(NotPortable, match="no ReplyStream subclass defined on this node"):
        resolve_stream(tag)


def test_a_stream_tag_never_imports_its_module() -> None:
    loaded = "tabnanny" in sys.modules  # a stdlib module nothing here imports
    with pytest.raises(NotPortable):
        resolve_stream("tabnanny:Stream")
    assert ("tabnanny" in sys.modules) == loaded
