"""A workload for the SIGKILL-resume test of the durable scheduler (run as a script).

``python _durable_worker.py DB RECORD N``: starts a system with a ``Scheduler`` journaling in
``DB``, submits tasks ``t0000 .. t{N-1}`` (the same ids on every run) and waits for all of
them. The handler appends the task id to ``RECORD`` (one line per execution, flushed) after a
short pause, so the test can kill the process mid-workload and count executions afterwards.
Prints ``ALL DONE <n>`` when every task is done.
"""

from __future__ import annotations

import asyncio
import os
import sys

from actoros import ActorSystem, run
from actoros.kernel.scheduler import Scheduler, SubmitAndWait, Task, TaskResult


async def main(db: str, record: str, n: int) -> None:
    fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def work(task: Task) -> int:
        await asyncio.sleep(0.005)
        os.write(fd, f"{task.id}\n".encode())  # one write per line: atomic with O_APPEND
        return int(task.payload["i"]) * 2

    async with ActorSystem("durable") as system:
        sched = await system.spawn(Scheduler, {"work": work}, db, workers=4, name="scheduler")
        asks = [
            sched.ask(SubmitAndWait(task=Task(id=f"t{i:04d}", kind="work", payload={"i": i})), None)
            for i in range(n)
        ]
        results: list[TaskResult] = await asyncio.gather(*asks)
    bad = [r for r in results if r.status != "done" or r.result != int(r.id[1:]) * 2]
    if bad:
        raise SystemExit(f"bad results: {bad[:3]}")
    sys.stdout.write(f"ALL DONE {len(results)}\n")


if __name__ == "__main__":
    run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
