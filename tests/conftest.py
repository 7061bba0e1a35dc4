"""Shared fixtures: an in-process MetaStudio simulator on 127.0.0.1 (ephemeral port).

``simulator``
    A running :class:`batcher.simulator.Simulator` with no faults that accepts the test
    AK/SK (``simulator.config.signing_credentials()`` -> ``AkSkCredentials``) and the test
    token (``simulator.config.tokens[0]``). ``simulator.url``, ``simulator.command_url(job)``,
    ``simulator.stats``, ``simulator.job_state(job)``, ``simulator.jobs.set_state(job, s)``.

``start_simulator``
    A factory for custom ones, stopped at the end of the test::

        sim = await start_simulator(error_rate=1.0, seed=3)     # fields of SimulatorConfig
        sim = await start_simulator(SimulatorConfig(...))       # or a whole config

    Fields given as keywords keep the test credentials unless they override them.

Every test gets its own ``--simulate`` world (``XDG_STATE_HOME`` in a temporary directory,
autouse ``_own_simulated_world``) and its own ``BATCHER_STATE_DIR`` (autouse ``_state_dir``).

After every test structlog is reset to its defaults (autouse ``_reset_structlog``): a test
that runs the CLI in-process configures it to pytest's captured stream, which is
closed once that test ends, and later log calls would fail with "I/O operation on closed
file".

Request logging is off by default here (``log_requests=False``): structlog's global
configuration is shared with other tests, and a request should not fail over a log line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
import structlog

from batcher.simulator import Simulator, SimulatorConfig, run_simulator

TEST_AK = "SIMTESTAK0000000001"
TEST_SK = "simulator-test-secret-key-0001"
TEST_TOKEN = "simulator-test-iam-token-0001"
TEST_PROJECT_ID = "sim-project"

StartSimulator = Callable[..., Awaitable[Simulator]]


def simulator_config(**fields: Any) -> SimulatorConfig:
    """A config with the test credentials and quiet logs; ``fields`` override."""
    fields.setdefault("credentials", {TEST_AK: TEST_SK})
    fields.setdefault("tokens", (TEST_TOKEN,))
    fields.setdefault("log_requests", False)
    return SimulatorConfig(**fields)


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own state directory (intent files), inherited by the processes it
    starts: a crashed run's intents in one test are no other test's business."""
    monkeypatch.setenv("BATCHER_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _own_simulated_world(tmp_path_factory: pytest.TempPathFactory, monkeypatch: Any) -> None:
    """Each test its own ``--simulate`` world (the processes it starts inherit it): the
    world is otherwise one file shared by every process of the user."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
async def start_simulator() -> AsyncIterator[StartSimulator]:
    async with AsyncExitStack() as stack:

        async def start(config: SimulatorConfig | None = None, **fields: Any) -> Simulator:
            if config is None:
                config = simulator_config(**fields)
            return await stack.enter_async_context(run_simulator(config))

        yield start


@pytest.fixture
async def simulator(start_simulator: StartSimulator) -> Simulator:
    return await start_simulator()
