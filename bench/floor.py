"""The floor: a bare aiohttp client (no signing, no manifest, no report), 100 tasks in flight.

    python bench/floor.py URL N

What batcher's transport alone costs per request; compare its CPU per 10,000 jobs with
batcher's to see how much of batcher's time is its own.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def main(url: str, n: int, concurrency: int = 100) -> int:
    path = url + "/v1/p1/digital-human-training-manage/user/jobs/{}/command"
    body = b'{"command":"GET_MULTIPART_UPLOADED"}'
    jobs = iter(range(1, n + 1))
    ok = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal ok
            for i in jobs:
                async with session.post(
                    path.format(f"job{i:07d}"),
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as answer:
                    ok += json.loads(await answer.read())["commond_result"] == "EXCUTE_SUCCESS"

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


if __name__ == "__main__":
    start = time.perf_counter()
    done = asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    print(json.dumps({"ok": done, "s": round(time.perf_counter() - start, 3)}))
