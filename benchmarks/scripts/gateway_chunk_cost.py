"""CPU per streamed token: the inference actor in-process vs the gateway's SSE path.

    .venv/bin/python benchmarks/scripts/gateway_chunk_cost.py [TOKENS] [STREAMS]

Starts a system on the fake engine (no token delay) with a gateway on a free port, then,
twice: STREAMS concurrent streams of TOKENS tokens read in-process from the inference actor,
and the same streams through ``POST /v1/chat/completions`` read by ``curl`` (a separate, cheap
C client). Prints this process's CPU time per token (actor) and per SSE chunk (gateway): the
difference is what the HTTP path costs. Needs ``curl`` on PATH.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import structlog
import yaml

import actoros
from actoros.app import start_system
from actoros.config import parse_config
from actoros.gateway import GatewayAddress
from actoros.inference.actor import stream
from actoros.inference.messages import ChatMessage, Generate

log = structlog.get_logger("benchmarks.gateway_chunk_cost")


async def main(tokens: int, streams: int) -> None:
    state = tempfile.mkdtemp(prefix="actoros-chunk-cost-")
    config = {
        "system": {"name": "chunk-cost", "state_dir": state, "log_level": "warning"},
        "inference": {"engine": "fake", "engine_args": {"max_model_len": tokens + 64}},
        "gateway": {"port": 0, "allow_raw_model": True},
        "agents": [{"name": "echo", "kind": "rule", "rules": [{"reply": "x"}]}],
    }
    system = await start_system(parse_config(yaml.safe_dump(config), base_dir=Path(state)))
    try:
        gateway = system.actors.lookup("/gateway")
        inference = system.service("inference")
        assert gateway is not None and inference is not None
        url = await gateway.ask(GatewayAddress())
        gen = Generate(
            messages=(ChatMessage("user", "hi"),), max_tokens=tokens, ignore_eos=True, stream=True
        )
        body = json.dumps(
            {
                "model": "fake",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": tokens,
                "ignore_eos": True,
                "stream": True,
            }
        )
        async for _ in stream(inference, gen, timeout=60):  # warm-up
            pass

        async def one() -> int:
            return sum([1 async for _ in stream(inference, gen, timeout=60)])

        for repeat in (1, 2):
            cpu = time.process_time()
            items = sum(await asyncio.gather(*(one() for _ in range(streams))))
            actor_us = 1e6 * (time.process_time() - cpu) / items
            cpu = time.process_time()
            curls = [
                await asyncio.create_subprocess_exec(
                    "curl",
                    "-sN",
                    f"{url}/v1/chat/completions",
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    body,
                    stdout=asyncio.subprocess.PIPE,
                )
                for _ in range(streams)
            ]
            outputs = await asyncio.gather(*(c.communicate() for c in curls))
            chunks = sum(out.count(b"data: ") for out, _ in outputs)
            gateway_us = 1e6 * (time.process_time() - cpu) / chunks
            log.warning(
                "chunk_cost",
                repeat=repeat,
                streams=streams,
                tokens=tokens,
                actor_us_per_token=round(actor_us, 1),
                gateway_us_per_chunk=round(gateway_us, 1),
            )
    finally:
        await system.shutdown()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    actoros.run(main(*(args + [4000, 8][len(args) :])))
