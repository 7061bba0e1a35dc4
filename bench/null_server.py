"""A minimal "null" MetaStudio for throughput benchmarks.

Answers every POST with ``{"commond_result":"EXCUTE_SUCCESS"}`` and an ``X-Request-Id``
header, after an optional fixed delay; no auth check, no access log. It records the
arrival time (``time.time()``) of every POST so rate accuracy can be judged from the
server's side:

    GET  /__bench/arrivals   -> JSON list of arrival times (seconds since the epoch)
    GET  /__bench/first      -> the first arrival time, or null before any
    POST /__bench/reset      -> forget the arrivals recorded so far

The first line on stdout is ``listening on http://127.0.0.1:PORT``.

    python bench/null_server.py --port 0 --latency-ms 0
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import time

from aiohttp import web

_BODY = b'{"commond_result":"EXCUTE_SUCCESS"}'


def make_app(latency: float) -> web.Application:
    arrivals: list[float] = []
    counter = itertools.count(1)
    now = time.time

    async def command(request: web.Request) -> web.Response:
        arrivals.append(now())
        await request.read()
        if latency > 0:
            await asyncio.sleep(latency)
        return web.Response(
            body=_BODY,
            content_type="application/json",
            headers={"X-Request-Id": f"{next(counter):032x}"},
        )

    async def get_arrivals(_request: web.Request) -> web.Response:
        return web.Response(body=json.dumps(arrivals).encode(), content_type="application/json")

    async def get_first(_request: web.Request) -> web.Response:
        first = arrivals[0] if arrivals else None
        return web.Response(body=json.dumps(first).encode(), content_type="application/json")

    async def reset(_request: web.Request) -> web.Response:
        arrivals.clear()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/__bench/arrivals", get_arrivals)
    app.router.add_get("/__bench/first", get_first)
    app.router.add_post("/__bench/reset", reset)
    app.router.add_post("/{tail:.*}", command)
    return app


async def serve(host: str, port: int, latency: float) -> None:
    runner = web.AppRunner(make_app(latency), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    sock = site._server.sockets[0]  # type: ignore[union-attr]
    bound = sock.getsockname()[1]
    print(f"listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.latency_ms / 1000.0))


if __name__ == "__main__":
    main()
