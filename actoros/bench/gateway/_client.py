"""The load generator of ``actoros bench gateway``: the official ``openai`` client, in its own
process.

Clients of a gateway are other programs; running them in the benchmark's own process would
make them share the event loop (and the GIL) with the actors they measure. So the bench starts
``python -m actoros.bench.gateway._client`` once per engine and talks to it over pipes, one
JSON line per message: it sends a ``Level`` (or ``ListModels``), the client answers with
``LevelDone`` (or ``Models``, or ``Failed``). Between the two, the client runs ``concurrency``
tasks, each sending its share of ``requests`` chat completions one after another through one
``AsyncOpenAI`` (an HTTP pool of at least ``concurrency`` connections, kept alive across
levels) and timing each request where it sees it: start before the call, a stamp per content
chunk (streaming), end when the response is complete. Tokens are the server's ``usage``
(streaming: ``stream_options.include_usage``); 0 when it reports none.

Streams are read raw: the client builds and sends the request (``with_streaming_response``)
and this module reads the server-sent events with ``msgspec``, as vLLM's own serving
benchmark reads them. Letting the client parse every chunk into its pydantic models costs
about 260 µs of CPU per token — six times what the gateway spends to send it — and on a
2-core machine that CPU is taken from the engine being measured.

``LoadGenerator`` is the bench's side: it starts the process and sends it levels.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import sys
import time
from time import perf_counter
from typing import Any

import msgspec

from .._common import child_env
from ..inference._paths import RequestSample, split

MAX_CONNECTIONS = 64  # the pool's floor; a level with more concurrency gets more
READ_LIMIT = 64 << 20  # bytes per line from the client: a level's samples with every stamp
START_TIMEOUT = 60.0  # seconds the client may take to import openai and say it is ready
ERRORS_KEPT = 5


class Level(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Send ``requests`` chat completions of one user message, ``concurrency`` at a time."""

    base_url: str  # e.g. http://127.0.0.1:8000/v1
    api_key: str
    model: str
    prompt: str  # the user message
    max_tokens: int
    stream: bool
    concurrency: int
    requests: int
    temperature: float = 0.0
    timeout: float = 600.0  # seconds per request
    ignore_eos: bool = False  # vLLM's extension (raw model): exactly max_tokens tokens
    distinct: bool = True  # every request its own prompt (a random tag first), else ``prompt``


def distinct_prompt(prompt: str, rng: random.Random) -> str:
    """``prompt`` behind a random tag: no two requests share a prefix (nor a prefix-cache
    hit), as real traffic; the task stays the same, so does the answer's length."""
    return f"Request {rng.getrandbits(64):016x}. {prompt}"


class ListModels(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    base_url: str
    api_key: str


class Ready(msgspec.Struct, frozen=True, tag=True):
    """The client has imported ``openai`` and waits for commands."""

    openai_version: str


class Sample(msgspec.Struct, frozen=True, array_like=True):
    """A ``RequestSample`` on the wire (JSON has no NaN: no first token is ``None``)."""

    start: float
    first: float | None
    end: float
    stamps: list[float]
    output_tokens: int
    prompt_tokens: int

    def request_sample(self) -> RequestSample:
        first = math.nan if self.first is None else self.first
        return RequestSample(
            self.start, first, self.end, self.stamps, self.output_tokens, self.prompt_tokens
        )


class LevelDone(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    samples: list[Sample]  # the requests that succeeded
    seconds: float  # wall time of the level, first request sent to last response complete
    failed: int
    errors: list[str]  # the first few failures
    cpu_seconds: float  # this process's CPU time during the level (is the client the limit?)


class Models(msgspec.Struct, frozen=True, tag=True):
    ids: list[str]


class Failed(msgspec.Struct, frozen=True, tag=True):
    error: str


Command = Level | ListModels
Reply = Ready | LevelDone | Models | Failed


# -- the client process ------------------------------------------------------------------------


class _Clients:
    """One ``AsyncOpenAI`` per (base URL, key, pool size), kept for the process's life."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, int], Any] = {}

    def get(self, base_url: str, api_key: str, connections: int = MAX_CONNECTIONS) -> Any:
        import httpx2  # the HTTP library this openai is built on (an httpx fork)
        import openai

        size = max(MAX_CONNECTIONS, connections)
        key = (base_url, api_key, size)
        if key not in self._clients:
            limits = httpx2.Limits(
                max_connections=size, max_keepalive_connections=size, keepalive_expiry=300.0
            )
            self._clients[key] = openai.AsyncOpenAI(
                base_url=base_url,
                api_key=api_key,
                max_retries=0,  # a failure is a result here, not something to hide
                http_client=openai.DefaultAsyncHttpxClient(limits=limits),
            )
        return self._clients[key]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


_rng = random.Random()


async def _one(client: Any, level: Level) -> Sample:
    content = distinct_prompt(level.prompt, _rng) if level.distinct else level.prompt
    messages = [{"role": "user", "content": content}]
    common: dict[str, Any] = {
        "model": level.model,
        "messages": messages,
        "max_tokens": level.max_tokens,
        "temperature": level.temperature,
        "timeout": level.timeout,
    }
    if level.ignore_eos:
        common["extra_body"] = {"ignore_eos": True}
    start = perf_counter()
    if not level.stream:
        response = await client.chat.completions.create(**common)
        end = perf_counter()
        tokens, prompt_tokens = _tokens(response.usage)
        return Sample(start, None, end, [], tokens, prompt_tokens)
    stamps: list[float] = []
    usage = None
    # the client's own request, its raw event stream read here (see the module docstring)
    request = client.chat.completions.with_streaming_response.create(
        **common, stream=True, stream_options={"include_usage": True}
    )
    async with request as response:
        async for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                break
            chunk = _CHUNK.decode(line[6:])
            if chunk.error is not None:
                raise StreamError(str(chunk.error.get("message", chunk.error)))
            if chunk.choices and chunk.choices[0].delta.content:
                stamps.append(perf_counter())
            if chunk.usage is not None:
                usage = chunk.usage
    end = perf_counter()
    tokens, prompt_tokens = _tokens(usage)
    return Sample(start, stamps[0] if stamps else None, end, stamps, tokens, prompt_tokens)


class StreamError(Exception):
    """The server ended a stream with an error event."""


class _Delta(msgspec.Struct, frozen=True):
    content: str | None = None


class _Choice(msgspec.Struct, frozen=True):
    delta: _Delta = _Delta()


class _Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Chunk(msgspec.Struct, frozen=True):
    """The fields of a ``chat.completion.chunk`` (or an error event) the bench reads."""

    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: dict[str, Any] | None = None


_CHUNK = msgspec.json.Decoder(_Chunk)


def _tokens(usage: Any) -> tuple[int, int]:
    """(output, prompt) tokens from a response's usage; (0, 0) when the server gives none."""
    if usage is None:
        return 0, 0
    return usage.completion_tokens, usage.prompt_tokens


async def run_level(clients: _Clients, level: Level) -> LevelDone:
    client = clients.get(level.base_url, level.api_key, level.concurrency)
    samples: list[Sample] = []
    errors: list[str] = []
    failed = 0

    async def worker(count: int) -> None:
        nonlocal failed
        for _ in range(count):
            try:
                samples.append(await _one(client, level))
            except Exception as exc:  # a failed request is counted and reported, not fatal
                failed += 1
                if len(errors) < ERRORS_KEPT:
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])

    gc.collect()
    cpu = time.process_time()
    began = perf_counter()
    await asyncio.gather(*(worker(n) for n in split(level.requests, level.concurrency)))
    seconds = perf_counter() - began
    return LevelDone(
        samples=samples,
        seconds=seconds,
        failed=failed,
        errors=errors,
        cpu_seconds=time.process_time() - cpu,
    )


async def _serve() -> None:
    import openai

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(Command)

    def reply(value: Reply) -> None:
        out.write(encoder.encode(value) + b"\n")
        out.flush()

    clients = _Clients()
    reply(Ready(openai.__version__))
    try:
        while line := await reader.readline():  # empty: the bench closed our stdin
            try:
                command = decoder.decode(line)
                if isinstance(command, Level):
                    reply(await run_level(clients, command))
                else:
                    client = clients.get(command.base_url, command.api_key)
                    reply(Models([model.id async for model in client.models.list()]))
            except Exception as exc:  # answer, so that the bench reports it
                reply(Failed(f"{type(exc).__name__}: {exc}"))
    finally:
        await clients.close()


def _main() -> None:
    from actoros import run

    run(_serve())


# -- the bench's side --------------------------------------------------------------------------


class LoadGeneratorFailed(Exception):
    """The client process died, or could not do what it was asked."""


class LoadGenerator:
    """The client process, started by ``start()``; ``close()`` ends it."""

    def __init__(self, process: asyncio.subprocess.Process, openai_version: str) -> None:
        self._process = process
        self.openai_version = openai_version
        self._decoder = msgspec.json.Decoder(Reply)

    @classmethod
    async def start(cls) -> LoadGenerator:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "actoros.bench.gateway._client",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=child_env(),
            limit=READ_LIMIT,
        )
        generator = cls(process, "")
        try:
            ready = await asyncio.wait_for(generator._read(), START_TIMEOUT)
        except BaseException:
            await generator.close()
            raise
        if not isinstance(ready, Ready):
            await generator.close()
            raise LoadGeneratorFailed(f"the client process did not start: {ready}")
        generator.openai_version = ready.openai_version
        return generator

    async def _read(self) -> Reply:
        assert self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line:
            code = await self._process.wait()
            raise LoadGeneratorFailed(f"the client process exited (status {code})")
        return self._decoder.decode(line)

    async def _ask(self, command: Command) -> Reply:
        assert self._process.stdin is not None
        self._process.stdin.write(msgspec.json.encode(command) + b"\n")
        await self._process.stdin.drain()
        reply = await self._read()
        if isinstance(reply, Failed):
            raise LoadGeneratorFailed(reply.error)
        return reply

    async def run(self, level: Level) -> LevelDone:
        reply = await self._ask(level)
        assert isinstance(reply, LevelDone)
        return reply

    async def models(self, base_url: str, api_key: str) -> list[str]:
        reply = await self._ask(ListModels(base_url=base_url, api_key=api_key))
        assert isinstance(reply, Models)
        return reply.ids

    async def close(self) -> None:
        process = self._process
        if process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10.0)
            except TimeoutError:
                process.kill()
                await process.wait()


if __name__ == "__main__":
    _main()
