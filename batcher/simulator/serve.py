"""Serving the simulator on the running event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
