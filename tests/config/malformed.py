"""Malformed config files, written to a folder, and the judge of what ``validate`` said.

Shared by the fuzz tests (``test_fuzz.py``, small sizes) and the larger run in
``benchmarks/scripts/config_fuzz.py``. Every ``Case`` is a file (or something that is not a
file) that ``actoros validate`` must answer *cleanly*: exit 2 with one line per problem
(``FILE:LINE: PATH: problem``, ``FILE: problem`` or ``actoros: error: ...``), or exit 0 with
its one ``ok`` line when the file happens to be valid; never a traceback, a hang or a crash.

The classes of cases (``Case.kind``): ``encoding`` (latin-1, UTF-16, random bytes, ...),
``bomb`` (billion laughs, alias trees, recursive aliases, deep nesting), ``file`` (FIFO,
/dev/zero, symlink loops, huge files, odd names), ``value`` (every numeric field of the
schema, found by walking it, set to absurd values), ``semantic`` (cycles, reserved group
names, missing tool modules, ...), ``yaml`` (tags, several documents, odd keys), ``workload``
(bad workload files) and ``mutation`` (truncations, byte edits and type confusions of the
example configs, from a seeded ``random.Random``: the same seed gives the same files).

This module imports nothing of actoros but its schema (to find the numeric fields), so the
benchmark can judge another checkout's ``actoros validate`` with it.
"""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec.inspect as mi
import yaml

from actoros.config.schema import Config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "configs"

Expect = Literal["invalid", "any"]


@dataclass(frozen=True)
class Case:
    """One input for ``actoros validate``: ``path``, and what a clean answer must be.

    ``expect``: ``invalid`` (must exit 2) or ``any`` (exit 0 or 2). ``lines``: the exact
    number of problem lines, where known. ``mention``: a text some problem line must hold.
    """

    name: str
    kind: str
    path: Path
    expect: Expect = "invalid"
    lines: int | None = None
    mention: str | None = None


BASE = """\
inference: {engine: fake}
agents:
  - name: router
    kind: rule
    permissions: {agents: [helper]}
    rules:
      - contains: {text: hi}
        reply: hello
      - forward: helper
  - name: helper
    kind: llm
    max_tokens: 64
groups:
  - name: all
    children: [router, helper]
workload:
  agent: router
  tasks:
    - {input: hi}
"""
"""A small valid config the value and semantic cases start from."""


class _Writer:
    """Writes the files of the cases under ``root`` (one file per case, unique names)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def path(self, kind: str, name: str, suffix: str = ".yaml") -> Path:
        self.count += 1
        safe = re.sub(r"[^\w.-]", "_", name)[:60]
        folder = self.root / kind
        folder.mkdir(exist_ok=True)
        return folder / f"{self.count:04d}-{safe}{suffix}"

    def bytes(self, kind: str, name: str, data: bytes, **case: Any) -> Case:
        path = self.path(kind, name)
        path.write_bytes(data)
        return Case(f"{kind}/{name}", kind, path, **case)

    def text(self, kind: str, name: str, text: str, **case: Any) -> Case:
        return self.bytes(kind, name, text.encode("utf-8"), **case)

    def data(self, kind: str, name: str, data: Any, **case: Any) -> Case:
        return self.text(kind, name, yaml.safe_dump(data, sort_keys=False), **case)


# -- encodings -------------------------------------------------------------------------------


def encoding_cases(w: _Writer, rng: random.Random) -> Iterator[Case]:
    text = BASE.replace("max_tokens: 64", "system_prompt: Réponds en français, s'il te plaît.")
    yield w.bytes("encoding", "latin-1", text.encode("latin-1"), lines=1)
    yield w.bytes("encoding", "cp1252", (text + "# “quoted”\n").encode("cp1252"), lines=1)
    for codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32"):
        yield w.bytes("encoding", codec, text.encode(codec), lines=1)
    yield w.bytes("encoding", "utf-8-bom", text.encode("utf-8-sig"), expect="any")
    for i in range(6):
        size = rng.choice((16, 256, 4096))
        yield w.bytes("encoding", f"random-bytes-{i}", rng.randbytes(size), lines=1)
    yield w.bytes("encoding", "nul-bytes", BASE.encode() + b"\x00\x00\n", lines=1)
    yield w.bytes("encoding", "overlong-utf8", b"system: {name: \xc0\xaf}\n", lines=1)
    yield w.bytes("encoding", "truncated-utf8", b"system: {name: caf\xc3}\n", lines=1)
    yield w.bytes("encoding", "surrogate-cesu8", b"agents: [{name: \xed\xa0\x80}]\n", lines=1)
    yield w.bytes("encoding", "lone-latin1-in-comment", BASE.encode() + b"# caf\xe9\n", lines=1)
    yield w.text("encoding", "control-chars", BASE + "# \x1b[31mred\x07\n", lines=1)
    yield w.text("encoding", "escape-in-name", 'system: {name: "\\e[31mred"}\n', lines=1)
    yield w.text("encoding", "newline-in-value", 'system: {log_level: "a\\nb\\u2028c"}\n', lines=1)


# -- YAML bombs and deep nesting -------------------------------------------------------------


def bomb_cases(w: _Writer) -> Iterator[Case]:
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        laughs.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    yield w.text("bomb", "billion-laughs", "\n".join(laughs) + "\n", lines=1)
    yield w.text(
        "bomb",
        "billion-laughs-in-engine-args",
        "inference:\n  engine: fake\n  engine_args:\n"
        + "".join(f"    {line}\n" for line in laughs),
        lines=1,
    )
    tree = ["x0: &x0 {k: v}"]
    tree += [f"x{i}: &x{i} {{l: *x{i - 1}, r: *x{i - 1}}}" for i in range(1, 40)]
    yield w.text("bomb", "binary-alias-tree", "\n".join(tree) + "\n", lines=1)
    big = "base: &big [" + ",".join(str(i) for i in range(2000)) + "]\n"
    refs = "".join(f"r{i}: *big\n" for i in range(2000))
    yield w.text("bomb", "quadratic-aliases", big + refs, lines=1)
    yield w.text("bomb", "recursive-sequence", "x: &a [*a]\n", lines=1)
    yield w.text("bomb", "recursive-mapping", "system: &s {name: *s}\n", lines=1)
    merges = ["m0: &m0 {k0: v}"] + [
        f"m{i}: &m{i} {{<<: [*m{i - 1}], k{i}: *m{i - 1}}}" for i in range(1, 40)
    ]
    yield w.text("bomb", "merge-key-tree", "\n".join(merges) + "\n", lines=1)
    for depth in (200, 1000, 5000, 100_000):
        yield w.text("bomb", f"flow-sequence-{depth}", "x: " + "[" * depth + "]" * depth + "\n")
        yield w.text(
            "bomb", f"flow-mapping-{depth}", "x: " + "{a: " * depth + "b" + "}" * depth + "\n"
        )
    block = "".join("  " * i + "a:\n" for i in range(2000))
    yield w.text("bomb", "block-mapping-2000", block)
    yield w.text("bomb", "block-sequence-2000", "".join("  " * i + "-\n" for i in range(2000)))
    nests = ["d0: &d0 " + "[" * 90 + "]" * 90]  # each 90 deep, each holding the one before
    nests += [f"d{i}: &d{i} " + "[" * 90 + f"*d{i - 1}" + "]" * 90 for i in range(1, 12)]
    deep_alias = "\n".join(nests) + "\n"
    yield w.text("bomb", "depth-through-aliases", deep_alias, lines=1)
    yield w.text(
        "bomb",
        "payload-nesting-ok",
        BASE.replace(
            "      - forward: helper",
            "      - submit: {kind: k, payload: " + "[" * 20 + "]" * 20 + "}",
        ).replace("permissions: {agents: [helper]}", "permissions: {submit: true}"),
        expect="any",
    )


# -- things that are not plain files ---------------------------------------------------------


def _write_huge(path: Path, head: bytes, line: bytes, size: int, sparse: bool) -> None:
    """``head``, then ``line`` repeated to ``size`` bytes (``sparse``: one line, then holes)."""
    with path.open("wb") as out:
        out.write(head)
        if sparse:
            out.write(line)
            out.truncate(size)
        else:
            out.write(line * ((size - len(head)) // len(line) + 1))


def file_cases(w: _Writer, *, huge_bytes: int, sparse: bool) -> Iterator[Case]:
    fifo = w.path("file", "fifo")
    os.mkfifo(fifo)
    yield Case("file/fifo", "file", fifo, lines=1)
    zero = w.path("file", "dev-zero")
    zero.symlink_to("/dev/zero")
    yield Case("file/dev-zero-symlink", "file", zero, lines=1)
    yield Case("file/dev-zero", "file", Path("/dev/zero"), lines=1)
    yield Case("file/dev-null", "file", Path("/dev/null"), expect="any", lines=1)
    yield Case("file/directory", "file", w.root, lines=1)
    loop_a, loop_b = w.path("file", "loop-a"), w.path("file", "loop-b")
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    yield Case("file/symlink-loop", "file", loop_a, lines=1)
    dangling = w.path("file", "dangling")
    dangling.symlink_to(w.root / "nowhere.yaml")
    yield Case("file/dangling-symlink", "file", dangling, lines=1)
    yield Case("file/missing", "file", w.root / "missing.yaml", lines=1)
    under_file = w.path("file", "plain")
    under_file.write_text(BASE)
    yield Case("file/under-a-file", "file", under_file / "config.yaml", lines=1)
    unreadable = w.path("file", "unreadable")
    unreadable.write_text(BASE)
    unreadable.chmod(0)
    yield Case("file/unreadable", "file", unreadable, expect="any", lines=1)  # root reads it
    task = b'    - {input: "what is the capital of France, and of Italy?"}\n'
    huge = w.path("file", "huge")
    _write_huge(huge, BASE.encode(), task, huge_bytes, sparse)
    yield Case("file/huge", "file", huge, lines=1)
    holes = w.path("file", "sparse-huge")
    holes.write_text(BASE)
    os.truncate(holes, 1 << 40)  # a terabyte of holes: only its size is real
    yield Case("file/sparse-terabyte", "file", holes, lines=1)
    for name in ("new\nline", "tab\tname", "ünïcödé-名前", "esc\x1b[31m", " lead space", "-dash"):
        path = w.root / "file" / f"{w.count:04d}{name}.yaml"
        w.count += 1
        path.write_text(BASE + "bogus: 1\n")
        yield Case(f"file/name-{name!r}", "file", path, lines=1)
    empty = w.path("file", "empty")
    empty.write_bytes(b"")
    yield Case("file/empty", "file", empty, expect="any")


# -- absurd values: every numeric field of the schema ----------------------------------------

Step = str | int


def numeric_fields() -> list[tuple[tuple[Step, ...], str]]:
    """(path, "int" | "float") of every int or float field of ``Config``, lists at item 0."""
    found: list[tuple[tuple[Step, ...], str]] = []

    def walk(kind: mi.Type, at: tuple[Step, ...], seen: frozenset[type]) -> None:
        if isinstance(kind, mi.UnionType):
            for member in kind.types:
                walk(member, at, seen)
        elif isinstance(kind, mi.VarTupleType | mi.ListType):
            walk(kind.item_type, (*at, 0), seen)
        elif isinstance(kind, mi.StructType) and kind.cls not in seen:
            for field in kind.fields:
                walk(field.type, (*at, field.encode_name), seen | {kind.cls})
        elif isinstance(kind, mi.IntType | mi.FloatType) and not isinstance(at[-1], int):
            found.append((at, "int" if isinstance(kind, mi.IntType) else "float"))

    walk(mi.type_info(Config), (), frozenset())
    return found


ABSURD: list[tuple[str, Any, bool]] = [
    # (label, value, surely out of any sane range)
    ("1e6", 10**6, False),
    ("1e30", 10**30, True),
    ("-1e30", -(10**30), True),
    ("2**64", 2**64, True),
    ("float-1e30", 1e30, True),
    ("inf", math.inf, True),
    ("-inf", -math.inf, True),
    ("nan", math.nan, True),
    ("-1", -1, False),
    ("0", 0, False),
    ("true", True, False),
    ("string", "7", False),
    ("list", [1], False),
    ("null", None, False),
]


def put(data: Any, at: tuple[Step, ...], value: Any) -> None:
    """Set ``data`` at path ``at``, making the sections (and list items) on the way."""
    for step, after in zip(at, at[1:], strict=False):
        if isinstance(step, int):
            while len(data) <= step:
                data.append({})
            data = data[step]
        else:
            if not isinstance(data.get(step), dict | list):
                data[step] = [] if isinstance(after, int) else {}
            if step == "submit":
                data[step].setdefault("kind", "k")
            data = data[step]
    data[at[-1]] = value


def value_cases(w: _Writer) -> Iterator[Case]:
    for at, _ in numeric_fields():
        rendered = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in at).lstrip(".")
        for label, value, absurd in ABSURD:
            data = yaml.safe_load(BASE)
            put(data, at, value)
            yield w.data(
                "value",
                f"{rendered}={label}",
                data,
                expect="invalid" if absurd else "any",
                mention=rendered if absurd else None,
            )


# -- semantic holes --------------------------------------------------------------------------

CYCLE = """\
agents:
  - name: router
    kind: rule
    permissions: {agents: [b]}
    rules:
      - forward: b
  - name: b
    kind: rule
    permissions: {agents: [router]}
    rules:
      - match: {text: hello}
        reply: hi
      - forward: router
"""

LONG_CYCLE = """\
agents:
  - name: a
    kind: rule
    rules: [{contains: {text: order}, forward: b}, {reply: done}]
  - name: b
    kind: rule
    rules: [{contains: {text: urgent}, forward: c}, {contains: {text: order}, forward: c}]
  - name: c
    kind: rule
    rules: [{match: {kind: x}, reply: x}, {contains: {text: ord}, forward: a}]
"""

NO_CYCLE = """\
agents:
  - name: a
    kind: rule
    rules: [{match: {kind: x}, forward: b}, {reply: done}]
  - name: b
    kind: rule
    rules: [{match: {kind: y}, forward: a}, {reply: done}]
"""


def semantic_cases(w: _Writer) -> Iterator[Case]:
    yield w.text("semantic", "cycle-router-b", CYCLE, lines=1, mention="router -> b -> router")
    yield w.text("semantic", "cycle-of-three", LONG_CYCLE, lines=1, mention="a -> b -> c -> a")
    yield w.text("semantic", "contradictory-conditions-no-cycle", NO_CYCLE, expect="any")
    yield w.text(
        "semantic",
        "group-named-kernel",
        BASE.replace("name: all", "name: kernel"),
        lines=1,
        mention="kernel",
    )
    yield w.text(
        "semantic",
        "ungrouped-agents-beside-a-group-named-agents",
        BASE.replace("name: all", "name: agents").replace(
            "children: [router, helper]", "children: [router]"
        ),
        lines=1,
        mention="helper",
    )
    yield w.text(
        "semantic",
        "missing-user-tool-module",
        BASE + "services: {tools: {user: {lookup: 'no_such_module_xyz.sub:fn'}}}\n",
        lines=1,
        mention="no_such_module_xyz",
    )
    yield w.text(
        "semantic",
        "missing-agent-tool-module",
        BASE.replace("max_tokens: 64", "tools: ['nowhere_pkg_abc:fn']"),
        lines=1,
        mention="nowhere_pkg_abc",
    )
    yield w.text(
        "semantic",
        "user-tool-submodule-of-a-module",
        BASE + "services: {tools: {user: {lookup: 'json.nope:fn'}}}\n",
        lines=1,
        mention="json.nope",
    )
    state_file = w.path("semantic", "state-file", "")
    state_file.write_text("not a folder\n")
    yield w.text(
        "semantic",
        "state-dir-is-a-file",
        BASE + f"system: {{state_dir: {str(state_file)!r}}}\n",
        lines=1,
        mention="state_dir",
    )
    yield w.text(
        "semantic",
        "state-dir-under-a-file",
        BASE + f"system: {{state_dir: {str(state_file / 'sub')!r}}}\n",
        lines=1,
        mention="state_dir",
    )
    db_dir = w.root / "semantic" / "db-folder"
    db_dir.mkdir(exist_ok=True)
    yield w.text(
        "semantic",
        "scheduler-db-is-a-folder",
        BASE + f"services: {{scheduler: {{db: {str(db_dir)!r}}}}}\n",
        lines=1,
        mention="services.scheduler.db",
    )
    yield w.text(
        "semantic",
        "duplicate-task-ids",
        BASE.replace("    - {input: hi}", "    - {input: hi, id: t}\n    - {input: ho, id: t}"),
        expect="any",  # the journal's part of the issue
    )


# -- YAML oddities ---------------------------------------------------------------------------


YAML_ODDITIES = {
    "python-tag": "system: !!python/object/apply:os.system ['echo hi']\n",
    "unknown-tag": "system: !secret {name: x}\n",
    "binary": "system: {name: !!binary aGVsbG8=}\n",
    "two-documents": "system: {name: a}\n---\nsystem: {name: b}\n",
    "empty-documents": "---\n---\n",
    "undefined-alias": "system: *nowhere\n",
    "complex-key": "? [a, b]\n: c\n",
    "sequence-key-in-section": "system: {[a]: b}\n",
    "int-key": "system: {1: x}\n",
    "null-key": "system: {~: x}\n",
    "bool-key": "agents: [{name: a, kind: rule, rules: [{match: {yes: 1}, reply: x}]}]\n",
    "date-value": "system: {name: 2024-01-01}\n",
    "top-level-list": "- a\n- b\n",
    "top-level-scalar": "just text\n",
    "top-level-int": "42\n",
    "tabs": "system:\n\tname: x\n",
    "crlf": BASE.replace("\n", "\r\n") + "bogus: 1\r\n",
    "lone-cr": "system:\r  name: x\r",
    "unclosed-quote": 'system: {name: "x}\n',
    "unclosed-flow": "agents: [{name: a\n",
    "bad-indent": "system:\n  name: x\n bogus: y\n",
    "very-long-line": "system: {name: " + "x" * 200_000 + "}\n",
    "many-keys": "".join(f"k{i}: {i}\n" for i in range(5000)),
    "merge-key": "defaults: &d {kind: rule}\nagents: [{<<: *d, name: a, rules: [{reply: x}]}]\n",
    "merge-into-agents": "agents:\n  - &a {name: a, kind: rule, rules: [{reply: x}]}\n"
    "  - {<<: *a, name: b}\n",
    "anchor-on-section": "x: &s {name: a}\nsystem: *s\n",
    "emoji-names": "agents: [{name: 🤖, kind: rule, rules: [{reply: x}]}]\n",
    "rtl-override": 'agents: [{name: "a\\u202eb", kind: rule, rules: [{reply: x}]}]\n',
    "unicode-agent-name": "agents: [{name: café, kind: rule, rules: [{reply: x}]}]\n",
    "directive": "%YAML 1.1\n%TAG ! tag:x:\n---\nsystem: {name: x}\n",
    "bad-directive": "%YAML 9.9\n---\nsystem: {}\n",
    "key-without-value": "system:\n  name\n",
    "section-is-null": "system:\nagents:\n",
    "section-is-list": "system: [a]\n",
    "agents-is-mapping": "agents: {name: a}\n",
    "agent-is-string": "agents: [router]\n",
    "impossible-date": "system: {name: 2024-13-45}\n",
    "impossible-time": "system: {name: 2024-01-01 25:61:61}\n",
    "bool-tag-on-text": "system: {name: !!bool maybe}\n",
    "float-tag-on-text": "system: {name: !!float abc}\n",
    "int-tag-on-text": "system: {name: !!int 0b102}\n",
    "int-of-5000-digits": "workload: {concurrency: " + "9" * 5000 + "}\n",
    "hex-of-5000-digits": "workload: {concurrency: 0x" + "f" * 5000 + "}\n",
    "float-of-5000-digits": "agents: [{name: a, kind: llm, temperature: 1" + "0" * 5000 + ".5}]\n",
    "deep-but-fine": "inference: {engine: fake, engine_args: {a: {b: {c: {d: [1, [2, [3]]]}}}}}\n",
}


def yaml_cases(w: _Writer) -> Iterator[Case]:
    fine = {
        "empty-documents",
        "deep-but-fine",
        "merge-key",
        "directive",
        "section-is-null",
        "unicode-agent-name",
        "merge-into-agents",
        "anchor-on-section",
        "binary",
        "null-key",
        "lone-cr",
    }
    for name, text in YAML_ODDITIES.items():
        yield w.text("yaml", name, text, expect="any" if name in fine else "invalid")


# -- workload files --------------------------------------------------------------------------


def workload_cases(w: _Writer, *, huge_bytes: int, sparse: bool) -> Iterator[Case]:
    def with_file(name: str, target: Path, **case: Any) -> Case:
        text = BASE.replace("  tasks:\n    - {input: hi}\n", f"  file: {str(target)!r}\n")
        return w.text("workload", name, text, **case)

    def workload(name: str, data: bytes, **case: Any) -> Case:
        target = w.path("workload", name, ".jsonl")
        target.write_bytes(data)
        return with_file(name, target, **case)

    yield workload("latin-1", '{"input": "café"}\n'.encode("latin-1"), lines=1)
    yield workload("utf-16", '{"input": "hi"}\n'.encode("utf-16"), lines=1)
    yield workload("random-bytes", random.Random(7).randbytes(512), lines=1)
    yield workload("not-json", b"{input: hi}\n", lines=1)
    yield workload("deep-json", b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    yield workload("deep-json-mapping", b'{"input": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001)
    yield workload("big-int", b'{"input": "x", "priority": ' + b"9" * 40 + b"}\n", lines=1)
    yield workload("inf-priority", b'{"input": "x", "priority": 1e400}\n', lines=1)
    yield workload("a-list", b"[1, 2]\n", lines=1)
    yield workload("nul", b'{"input": "x"}\x00\n', lines=1)
    yield workload("unknown-agent", b'{"input": "x", "agent": "ghost"}\n', lines=1)
    yield workload("fine", b'{"input": "x"}\n"plain text task"\n# comment\n\n', expect="any")
    yield workload(
        "duplicate-ids", b'{"input": "x", "id": "t"}\n{"input": "y", "id": "t"}\n', expect="any"
    )
    fifo = w.path("workload", "fifo", ".jsonl")
    os.mkfifo(fifo)
    yield with_file("fifo", fifo, lines=1)
    yield with_file("dev-zero", Path("/dev/zero"), lines=1)
    yield with_file("directory", w.root, lines=1)
    yield with_file("missing", w.root / "nowhere.jsonl", lines=1)
    loop = w.path("workload", "loop", ".jsonl")
    loop.symlink_to(loop)
    yield with_file("symlink-loop", loop, lines=1)
    huge = w.path("workload", "huge", ".jsonl")
    line = b'{"input": "what is the capital of France, and of Italy?"}\n'
    _write_huge(huge, b"", line, huge_bytes, sparse)
    yield with_file("huge", huge, lines=1)


# -- mutations of the example configs --------------------------------------------------------

SPLICES = [
    b":",
    b"-",
    b" ",
    b"\n",
    b"\t",
    b"[",
    b"]",
    b"{",
    b"}",
    b"&a ",
    b"*a",
    b"!!",
    b"'",
    b'"',
    b"#",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"%",
    b"@",
    b"`",
    b"|",
    b">",
    b"? ",
    b"<<: ",
]


def _examples(w: _Writer) -> list[tuple[str, bytes]]:
    """The example configs, and their workloads copied beside the mutations (so a relative
    ``workload.file`` still resolves)."""
    out = w.root / "mutation"
    out.mkdir(exist_ok=True)
    if (EXAMPLES / "workloads").is_dir() and not (out / "workloads").exists():
        shutil.copytree(EXAMPLES / "workloads", out / "workloads")
    return [(path.stem, path.read_bytes()) for path in sorted(EXAMPLES.glob("*.yaml"))]


def _confuse(data: Any, rng: random.Random) -> Any:
    """``data`` with one node (picked at random) replaced by a value of another type."""
    nodes: list[tuple[Any, Any]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                nodes.append((node, key))
                collect(value)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                nodes.append((node, index))
                collect(value)

    collect(data)
    if not nodes:
        return rng.choice(REPLACEMENTS)()
    parent, key = rng.choice(nodes)
    parent[key] = rng.choice(REPLACEMENTS)()
    if isinstance(parent, dict) and rng.random() < 0.2:  # sometimes rename the key instead
        parent[rng.choice(["x", "nmae", "agent", "", "ünï", "a" * 300])] = parent.pop(key)
    return data


ODD_SCALARS = [
    "2024-13-45",
    "2024-01-01 25:61:61",
    "!!bool maybe",
    "!!float abc",
    "!!int 0b102",
    ".NaN",
    "-.inf",
    "0x" + "f" * 300,
    "9" * 5000,
    "1e400",
    "0o8",
    "1_2_3",
    "12:30:45",
    "~",
    "*nowhere",
    "&a x",
    "!!binary x",
    "!custom x",
    "'unterminated",
    '"\\q"',
    "|",
    ">",
    "[",
    "{",
    "? x",
    "- x",
    "=",
    "<<",
    "!!python/object:os.system x",
    "!!timestamp yesterday",
    "!!null x",
    "!!str",
]

REPLACEMENTS: list[Callable[[], Any]] = [
    lambda: None,
    lambda: True,
    lambda: 0,
    lambda: -1,
    lambda: 10**30,
    lambda: 1e308 * 10,
    lambda: math.nan,
    lambda: "",
    lambda: "x" * 10_000,
    lambda: "名前",
    lambda: [],
    lambda: {},
    lambda: [[[[[]]]]],
    lambda: {"a": {"b": {"c": 1}}},
    lambda: "module:function",
    lambda: "*",
    lambda: ["*"],
    lambda: [None],
    lambda: 3.5,
]


def mutation_cases(w: _Writer, rng: random.Random, count: int) -> Iterator[Case]:
    examples = _examples(w)

    def write(name: str, data: bytes) -> Case:
        path = w.root / "mutation" / f"{w.count:04d}-{name}.yaml"
        w.count += 1
        path.write_bytes(data)
        return Case(f"mutation/{name}", "mutation", path, expect="any")

    for i in range(count):
        stem, text = rng.choice(examples)
        how = rng.choice(("truncate", "splice", "delete", "duplicate", "flip", "confuse", "scalar"))
        if how == "scalar":  # an odd YAML scalar where a value was
            lines = text.split(b"\n")
            values = [i for i, line in enumerate(lines) if re.match(rb"^\s*[-\w]+: \S", line)]
            at = rng.choice(values)
            key = lines[at].split(b": ")[0]
            lines[at] = key + b": " + rng.choice(ODD_SCALARS).encode()
            data = b"\n".join(lines)
        elif how == "truncate":
            data = text[: rng.randrange(len(text))]
        elif how == "splice":
            at = rng.randrange(len(text))
            data = text[:at] + rng.choice(SPLICES) + text[at:]
        elif how == "delete":
            at = rng.randrange(len(text))
            data = text[:at] + text[at + rng.randrange(1, 40) :]
        elif how == "duplicate":
            at = rng.randrange(len(text))
            span = text[at : at + rng.randrange(1, 200)]
            data = text[:at] + span * rng.randrange(2, 5) + text[at:]
        elif how == "flip":
            data = bytearray(text)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:
            data = yaml.safe_dump(_confuse(yaml.safe_load(text), rng), sort_keys=False).encode()
        yield write(f"{stem}-{how}-{i}", data)


# -- all of them, and the judge --------------------------------------------------------------


def all_cases(
    root: Path,
    *,
    seed: int = 0,
    mutations: int = 60,
    huge_bytes: int = 100 << 20,
    sparse: bool = False,
) -> list[Case]:
    """Every case, written under ``root``: the fixed classes, then ``mutations`` mutations.

    The huge files are ``huge_bytes`` long: of real lines, or (``sparse``) of one line and
    then holes, which costs no disk.
    """
    w = _Writer(root)
    rng = random.Random(seed)
    return [
        *encoding_cases(w, rng),
        *bomb_cases(w),
        *file_cases(w, huge_bytes=huge_bytes, sparse=sparse),
        *value_cases(w),
        *semantic_cases(w),
        *yaml_cases(w),
        *workload_cases(w, huge_bytes=huge_bytes, sparse=sparse),
        *mutation_cases(w, rng, mutations),
    ]


def cleanup(root: Path) -> None:
    """Remove ``root`` (chmod first: some cases are unreadable)."""
    for path in root.rglob("*"):
        if not path.is_symlink() and path.exists() and not stat.S_ISFIFO(path.stat().st_mode):
            path.chmod(0o700)
    shutil.rmtree(root, ignore_errors=True)


_LINE = re.compile(r"^(?:actoros: error: \S.*|(?P<source>.+?)(?::\d+)?: \S.*)$")


def judge(case: Case, status: int | None, out: str, err: str, seconds: float) -> list[str]:
    """Why the answer to ``case`` is not clean (empty: clean). ``status`` None: it hung."""
    if status is None:
        return [f"no answer within {seconds:.0f} s"]
    wrong: list[str] = []
    if "Traceback" in err or "Traceback" in out:
        wrong.append("a traceback")
    if status not in (0, 2):
        wrong.append(f"exit {status}")
    elif status == 0 and case.expect == "invalid":
        wrong.append("accepted (exit 0)")
    lines = err.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    given = str(case.path)
    prefix = next((given[:i] for i, c in enumerate(given) if not c.isprintable()), given)
    if status == 0:
        if out.count("\n") != 1 or ": ok (" not in out or lines:
            wrong.append("exit 0 without exactly its one ok line")
    elif status == 2:
        if not lines:
            wrong.append("exit 2 without a problem line")
        if out:
            wrong.append("stdout is not empty")
        for line in lines:
            if not line.isprintable():
                wrong.append(f"a control character in a line: {line[:80]!r}")
            elif not _LINE.match(line) or not (
                line.startswith(("actoros: error: ", prefix)) and line.strip()
            ):
                wrong.append(f"not one problem line: {line[:80]!r}")
        if len(set(lines)) != len(lines):
            wrong.append("the same line twice")
        if case.lines is not None and len(lines) != case.lines:
            wrong.append(f"{len(lines)} lines, not {case.lines}")
        if case.mention is not None and not any(case.mention in line for line in lines):
            wrong.append(f"no line mentions {case.mention!r}")
    return wrong
