"""Where a run or a selection sends: the real endpoint and credentials, or a throwaway
simulator on loopback (``--simulate``) with keys made up for it."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import structlog
from yarl import URL

from .metastudio.credentials import AkSkCredentials, Credentials
from .settings import RunSettings

log = structlog.get_logger("batcher")


#: Jobs the throwaway simulator of ``select --simulate`` holds, so there is something to
#: select (a run's simulator creates jobs as commands name them).
SIMULATED_POPULATION = 500


@contextlib.asynccontextmanager
async def target(
    settings: RunSettings, *, population: int = 0
) -> AsyncIterator[tuple[URL, Credentials]]:
    """The endpoint and credentials to use: the real ones, or a throwaway simulator (with
    ``population`` seeded jobs)."""
    if not settings.simulate:
        assert settings.endpoint is not None and settings.credentials is not None
        yield settings.endpoint, settings.credentials
        return
    from .simulator import SimulatorConfig, run_simulator

    # Throwaway keys, so the demo exercises real signing end to end.
    credentials = AkSkCredentials(
        ak="SIM" + secrets.token_hex(8).upper(), sk=secrets.token_urlsafe(24)
    )
    config = SimulatorConfig(
        credentials={credentials.ak: credentials.sk},
        log_requests=False,
        population=population,
        seed=1 if population else None,
    )
    async with run_simulator(config) as simulator:
        log.info("simulator_started", url=str(simulator.url))
        yield URL(str(simulator.url)), credentials
