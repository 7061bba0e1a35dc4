"""Serving the simulator: on the running event loop, or from a thread for blocking clients."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aiohttp import web

from batcher.simulator.app import Simulator
from batcher.simulator.config import SimulatorConfig


@asynccontextmanager
async def run_simulator(config: SimulatorConfig | None = None) -> AsyncIterator[Simulator]:
    """Serve a simulator on the running event loop for the duration of the block.

    >>> async def demo():
    ...     async with run_simulator(SimulatorConfig(credentials={"AK": "SK"})) as sim:
    ...         return sim.url.startswith("http://127.0.0.1:")

    Raises ``OSError`` when the address cannot be bound.
    """
    sim = Simulator(config)
    runner = web.AppRunner(sim.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, sim.config.host, sim.config.port)
        await site.start()
        sim._port = runner.addresses[0][1]
        yield sim
    finally:
        await runner.cleanup()
        if sim.world is not None:
            sim.world.close()


@contextmanager
def run_simulator_in_thread(
    config: SimulatorConfig | None = None, *, timeout: float = 10.0
) -> Iterator[Simulator]:
    """Serve a simulator from a background thread with its own event loop.

    For blocking clients (the official SDK, ``requests``). Read ``sim.stats`` and job
    state only between requests: they belong to the simulator's thread.

    >>> with run_simulator_in_thread(SimulatorConfig()) as sim:  # doctest: +SKIP
    ...     requests.get(sim.url + "/__simulator/health")
    """
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        box["loop"], box["stop"] = asyncio.get_running_loop(), stop
        async with run_simulator(config) as sim:
            box["sim"] = sim
            ready.set()
            await stop.wait()

    def target() -> None:
        try:
            asyncio.run(serve())
        except BaseException as error:  # handed to the caller below
            box["error"] = error
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="batcher-simulator", daemon=True)
    thread.start()
    ready.wait(timeout)
    if "sim" not in box:
        thread.join(timeout)
        raise RuntimeError("the simulator did not start") from box.get("error")
    try:
        yield box["sim"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(timeout)
