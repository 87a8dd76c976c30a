"""What crosses between nodes: frames in batches, message bodies in msgpack (msgspec).

A batch is one msgpack array ``[src, process, seq, frames]`` per destination node per loop
turn; ``seq`` counts the batches of one link, so the receiver applies them in order even when
Ray runs two calls of an async actor out of order, and ``process`` tells the sender's
incarnations apart (a batch a dead process left on the way is not taken for its successor's).
A frame is one ``Frame`` (an array):

=============  ======================================================================
kind           meaning
=============  ======================================================================
``MSG``        a user message to ``path``; ``corr`` > 0 when it is an ask
``REPLY``      the answer to ask (or stop) ``corr``; ``tag`` names the body's type, or
               the error's when ``ok`` is false
``STOP``       stop ``path`` for good; the reply to ``corr`` says it is gone
``WATCH``      the sending node watches ``path`` (``UNWATCH``: no longer)
``TERMINATED`` ``path`` stopped for good; ``tag`` is the reason
``STREAM``     ask ``corr`` is answered with a ``ReplyStream``: ``tag`` names its class,
               the body is its label; the stream's own frames carry the same ``corr``
``ITEM``       the next item of stream ``corr``; ``tag`` and body as a message's
``END``        stream ``corr`` ended: its final value, or its error when ``ok`` is false
``CLOSE``      the asker closed stream ``corr`` before its end: close the real one
=============  ======================================================================

A streamed reply is not a value that crosses: the stream stays on the answering node, read
there, and its items follow the ``STREAM`` frame on the same link (so in order). The asker
gets a local instance of the same class, built as ``cls(label, on_close)``: every
``ReplyStream`` subclass that is to cross takes ``(str, on_close)`` (``CompletionStream``,
``AgentStream`` do). A ``STREAM`` tag only resolves to a subclass of ``ReplyStream`` that this
process has already defined: nothing is imported for it (``resolve_stream``).

Bodies: a msgspec ``Struct`` goes as msgpack under its import name (``module:Class``) and is
decoded back into that class; plain values (str, int, float, bool, None, bytes, lists and
dicts of them) go untagged. A value msgpack alone would change on the way (a Struct or tuple
inside an ``Any`` field or a list, a tuple, a set) goes *boxed*: every Struct, tuple and set
in it marked by a msgpack extension, so it arrives as itself. ``ActorRef``s anywhere inside
travel as an extension (node, path) and arrive as refs to the same actor. What none of this
carries (an arbitrary object, a lambda, a dict keyed by tuples) is refused before it leaves —
``NotPortable`` at ``tell``/``ask`` — unless the cluster allows pickle (``cluster.pickle:
true``), the declared fallback.
"""

from __future__ import annotations

import importlib
import io
import pickle
import random
from collections.abc import Callable
from typing import Any, Final

import msgspec

from actoros.core import ActorRef, ActorStopped
from actoros.core.stream import ReplyStream

MSG: Final = 0
REPLY: Final = 1
STOP: Final = 2
WATCH: Final = 3
UNWATCH: Final = 4
TERMINATED: Final = 5
STREAM: Final = 6
ITEM: Final = 7
END: Final = 8
CLOSE: Final = 9

REF_EXT: Final = 1
"""msgpack extension code of an ``ActorRef``: its data is msgpack ``[node, path]``."""

STRUCT_EXT: Final = 2
"""A Struct inside a boxed body: msgpack ``[tag, [field values, boxed]]``."""

TUPLE_EXT: Final = 3
SET_EXT: Final = 4
FROZENSET_EXT: Final = 5

BOXED: Final = "!boxed"
"""The tag of a body whose Structs, tuples and sets are marked one by one (``Codec._box``)."""

PICKLED: Final = "!pickle"
"""The tag of a body that crossed as pickle (the declared fallback)."""

_NATIVE: Final = (str, int, float, bool, type(None), bytes)


class NotPortable(TypeError):
    """A message that cannot cross to another node as it is."""


class NodeUnreachable(ActorStopped):
    """An ask (or stop) waited on a node that was lost before it answered."""


class RemoteError(Exception):
    """An error raised on another node whose type could not be rebuilt here."""


class Frame(msgspec.Struct, array_like=True):
    kind: int
    path: str = ""
    corr: int = 0
    tag: str = ""
    body: msgspec.Raw = msgspec.Raw(b"\xc0")  # msgpack nil
    sender: Any = None
    ok: bool = True


class Batch(msgspec.Struct, array_like=True):
    src: str
    process: int  # which process of ``src`` sent it (a restarted node is a new one)
    seq: int
    frames: list[Frame]


def type_tag(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


_resolved: dict[str, type] = {}


def resolve_tag(tag: str, base: type) -> type:
    """The class named by ``tag`` (``module:Qual.Name``), which must subclass ``base``.

    Nodes of one cluster run the same code and trust each other; still, a tag only ever
    resolves to a msgspec Struct (bodies) or an exception (errors), never to a callable.
    """
    cls = _resolved.get(tag)
    if cls is None:
        module, _, qualname = tag.partition(":")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise NotPortable(f"{tag} is not a {base.__name__}: it cannot be a message body")
        cls = _resolved[tag] = obj
    if not issubclass(cls, base):
        raise NotPortable(f"{tag} is not a {base.__name__}")
    return cls


StreamClass = Callable[[str, Callable[[], None]], ReplyStream[Any, Any]]
"""What a stream's class must be to cross: ``cls(label, on_close)`` builds the asker's copy."""

_streams: dict[str, StreamClass] = {}


def resolve_stream(tag: str) -> StreamClass:
    """The ``ReplyStream`` subclass named by ``tag`` among those defined in this process.

    Unlike a body's tag, a stream's is never imported: the class is looked up among
    ``ReplyStream``'s subclasses, so a frame can only ever name one of them (the asker has
    loaded the class of the streams it asks for: its package defines the messages it sends).
    """
    cls = _streams.get(tag)
    if cls is None:
        todo = list(ReplyStream.__subclasses__())
        while todo:  # a miss walks again: subclasses are defined as modules load
            sub = todo.pop()
            _streams[type_tag(sub)] = sub
            todo.extend(sub.__subclasses__())
        cls = _streams.get(tag)
        if cls is None:
            raise NotPortable(
                f"{tag} is no ReplyStream subclass defined on this node: a streamed reply "
                f"arrives as a local instance of its class (import its module here)"
            )
    return cls


def _has_any(t: msgspec.inspect.Type, seen: set[Any]) -> bool:
    """Whether decoding into ``t`` can change a value's type (an ``Any`` somewhere inside)."""
    mi = msgspec.inspect
    if isinstance(t, mi.AnyType | mi.CustomType):
        return True
    fields = getattr(t, "fields", None)  # Structs, dataclasses, TypedDicts, NamedTuples
    if fields is not None:
        cls = getattr(t, "cls", None)
        if cls in seen:
            return False
        seen.add(cls)
        return any(_has_any(f.type, seen) for f in fields)
    for attr in ("type", "item_type", "key_type", "value_type"):  # Metadata, collections
        sub = getattr(t, attr, None)
        if isinstance(sub, mi.Type) and _has_any(sub, seen):
            return True
    for attr in ("types", "item_types"):  # unions, fixed tuples
        subs = getattr(t, attr, None)
        if subs and any(_has_any(x, seen) for x in subs):
            return True
    return False


_exact: dict[type, bool] = {}


def _decodes_exactly(cls: type) -> bool:
    """Whether every value of Struct ``cls`` comes back from msgpack as it went (cached)."""
    exact = _exact.get(cls)
    if exact is None:
        exact = _exact[cls] = not _has_any(msgspec.inspect.type_info(cls), set())
    return exact


class Codec:
    """Encodes and decodes one node's frames; refs are made by the node's ``make_ref``."""

    def __init__(
        self,
        node: str,
        ref_key: Callable[[ActorRef], tuple[str, str]],
        make_ref: Callable[[str, str], ActorRef],
        allow_pickle: bool = False,
    ) -> None:
        self.node = node
        self.process = random.getrandbits(62)  # this process among the incarnations of node
        self._ref_key = ref_key
        self._make_ref = make_ref
        self.allow_pickle = allow_pickle
        self._enc = msgspec.msgpack.Encoder(enc_hook=self._enc_hook)
        self._dec_hooks = {"ext_hook": self._ext_hook, "dec_hook": self._dec_hook}
        self._batch_dec = msgspec.msgpack.Decoder(Batch, **self._dec_hooks)  # type: ignore[arg-type]
        self._any_dec = msgspec.msgpack.Decoder(**self._dec_hooks)  # type: ignore[arg-type]
        self._decoders: dict[type, msgspec.msgpack.Decoder[Any]] = {}

    # -- refs -------------------------------------------------------------------------------

    def _enc_hook(self, obj: Any) -> Any:
        if isinstance(obj, ActorRef):
            return msgspec.msgpack.Ext(REF_EXT, self._enc.encode(self._ref_key(obj)))
        raise NotPortable(f"{type(obj).__name__} values cannot be carried by msgpack")

    def _ext_hook(self, code: int, data: memoryview) -> Any:
        if code == REF_EXT:
            node, path = msgspec.msgpack.decode(data, type=tuple[str, str])
            return self._make_ref(node, path)
        if code == STRUCT_EXT:
            tag, values = self._any_dec.decode(data)
            cls = resolve_tag(tag, msgspec.Struct)
            return cls(**dict(zip(cls.__struct_fields__, values, strict=True)))
        if code == TUPLE_EXT:
            return tuple(self._any_dec.decode(data))
        if code == SET_EXT:
            return set(self._any_dec.decode(data))
        if code == FROZENSET_EXT:
            return frozenset(self._any_dec.decode(data))
        raise NotPortable(f"unknown msgpack extension {code}")

    @staticmethod
    def _dec_hook(cls: type, obj: Any) -> Any:
        if isinstance(obj, cls):
            return obj
        raise NotPortable(f"expected {cls.__name__}, got {type(obj).__name__}")

    # -- bodies -----------------------------------------------------------------------------

    def body(self, value: Any) -> tuple[str, msgspec.Raw]:
        """``(tag, payload)`` for ``value``; raises ``NotPortable`` if it cannot cross.

        A Struct whose fields are all typed goes as plain msgpack under its tag; one with
        ``Any`` fields, and a list or dict, too when msgpack gives it back unchanged; anything
        else (a Struct or tuple inside an ``Any``, a top-level tuple or set) is boxed: each
        Struct, tuple and set inside marked as such, so it arrives as itself."""
        cls = type(value)
        if cls in _NATIVE or isinstance(value, ActorRef):
            return "", msgspec.Raw(self._enc.encode(value))
        try:
            if isinstance(value, msgspec.Struct):
                payload = self._enc.encode(value)
                tag = type_tag(cls)
                if _decodes_exactly(cls) or self._decode(tag, payload) == value:
                    return tag, msgspec.Raw(payload)
            elif cls is list or cls is dict:
                payload = self._enc.encode(value)
                if self._any_dec.decode(payload) == value:
                    return "", msgspec.Raw(payload)
            return BOXED, msgspec.Raw(self._enc.encode(self._box(value)))
        except (NotPortable, TypeError, ValueError, msgspec.ValidationError) as exc:
            why = str(exc)
        if self.allow_pickle:
            return PICKLED, msgspec.Raw(self._enc.encode(self._pickle(value)))
        raise NotPortable(
            f"{cls.__name__} cannot cross to another node: {why}; make it a msgspec Struct "
            f"with typed fields, or allow the pickle fallback (cluster.pickle: true)"
        )

    def _box(self, value: Any) -> Any:
        cls = type(value)
        if cls in _NATIVE or isinstance(value, ActorRef):
            return value
        if cls is list:
            return [self._box(v) for v in value]
        if cls is dict:
            for key in value:
                if type(key) not in (str, int):
                    raise NotPortable(f"a dict key of type {type(key).__name__}")
            return {k: self._box(v) for k, v in value.items()}
        ext = msgspec.msgpack.Ext
        if isinstance(value, msgspec.Struct):
            fields = [self._box(getattr(value, f)) for f in cls.__struct_fields__]
            return ext(STRUCT_EXT, self._enc.encode([type_tag(cls), fields]))
        if cls is tuple:
            return ext(TUPLE_EXT, self._enc.encode([self._box(v) for v in value]))
        if cls is set or cls is frozenset:
            code = SET_EXT if cls is set else FROZENSET_EXT
            return ext(code, self._enc.encode([self._box(v) for v in value]))
        raise NotPortable(f"{cls.__name__} is not a msgspec Struct nor a plain value")

    def decode_body(self, tag: str, payload: msgspec.Raw | bytes) -> Any:
        if not tag or tag == BOXED:
            return self._any_dec.decode(payload)
        if tag == PICKLED:
            return self._unpickle(msgspec.msgpack.decode(payload, type=bytes))
        return self._decode(tag, payload)

    def _decode(self, tag: str, payload: msgspec.Raw | bytes) -> Any:
        cls = resolve_tag(tag, msgspec.Struct)
        dec = self._decoders.get(cls)
        if dec is None:
            dec = self._decoders[cls] = msgspec.msgpack.Decoder(cls, **self._dec_hooks)  # type: ignore[arg-type]
        return dec.decode(payload)

    def error(self, exc: BaseException) -> tuple[str, msgspec.Raw]:
        return type_tag(type(exc)), msgspec.Raw(self._enc.encode(str(exc)))

    def decode_error(self, tag: str, payload: msgspec.Raw | bytes) -> BaseException:
        text = msgspec.msgpack.decode(payload, type=str)
        try:
            cls = resolve_tag(tag, BaseException)
        except Exception:
            return RemoteError(f"{tag}: {text}")
        try:
            return cls(text)  # type: ignore[no-any-return]
        except Exception:
            pass
        # an __init__ that takes more than the message (PromptTooLong's three numbers): the
        # same type with the same message, so an ``except``/``isinstance`` still matches it
        try:
            error: BaseException = cls.__new__(cls)
            BaseException.__init__(error, text)
            if str(error) == text:
                return error
        except Exception:
            pass
        return RemoteError(f"{tag}: {text}")

    # -- streamed replies -------------------------------------------------------------------

    def stream(self, stream: ReplyStream[Any, Any]) -> tuple[str, msgspec.Raw]:
        """``(tag, payload)`` of a ``STREAM`` frame: the stream's class and its label."""
        cls = type(stream)
        if cls is ReplyStream:  # its __init__ takes a final type, not (label, on_close)
            raise NotPortable(
                "a bare ReplyStream cannot cross to another node: reply with a subclass "
                "whose __init__ takes (label, on_close), as CompletionStream does"
            )
        return type_tag(cls), msgspec.Raw(self._enc.encode(stream._label))

    def decode_stream(self, tag: str, payload: msgspec.Raw | bytes) -> tuple[StreamClass, str]:
        return resolve_stream(tag), msgspec.msgpack.decode(payload, type=str)

    # -- batches ----------------------------------------------------------------------------

    def batch(self, seq: int, frames: list[Frame]) -> bytes:
        return self._enc.encode(Batch(self.node, self.process, seq, frames))

    def decode_batch(self, data: bytes) -> Batch:
        return self._batch_dec.decode(data)

    # -- the declared fallback --------------------------------------------------------------

    def _pickle(self, value: Any) -> bytes:
        buf = io.BytesIO()
        pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
        ref_key = self._ref_key
        pickler.persistent_id = lambda obj: ref_key(obj) if isinstance(obj, ActorRef) else None  # type: ignore[method-assign]
        try:
            pickler.dump(value)
        except Exception as exc:
            raise NotPortable(
                f"{type(value).__name__} cannot cross to another node even as pickle: {exc}"
            ) from None
        return buf.getvalue()

    def _unpickle(self, data: bytes) -> Any:
        unpickler = pickle.Unpickler(io.BytesIO(data))
        make_ref = self._make_ref
        unpickler.persistent_load = lambda key: make_ref(*key)  # type: ignore[method-assign]
        return unpickler.load()
