"""A local MetaStudio: the training-job endpoints, their gateway, and faults on demand.

Serves the command endpoint (``POST .../user/jobs/{job_id}/command``), List (``GET
.../user/jobs``), Show (``GET .../user/jobs/{job_id}``) and Update (``PUT
.../user/jobs/{job_id}``) with the SDK's response models, state names and log types; follows
the documented flows only (:mod:`~batcher.simulator.machine`); verifies AK/SK signatures and
tokens like the cloud's gateway; keeps per-job state and logs, in memory or in a world file
several processes share (:mod:`~batcher.simulator.world`); can be seeded with a reproducible
population (:mod:`~batcher.simulator.population`); and injects seeded latency, 500s, 429s,
dropped connections, answers lost after the command executed, and answers that come late.
Also ``GET /__simulator/health``, ``/__simulator/stats`` (see :class:`SimulatorStats`) and
``/__simulator/jobs``.

>>> async def demo():
...     config = SimulatorConfig(credentials={"AK": "SK"}, seed=1, population=500)
...     async with run_simulator(config) as sim:
...         ...  # point a client at sim.url; afterwards read sim.stats, sim.job_state("j1")

The ``--jobs-file`` seed file format is in :mod:`batcher.simulator.config`.
"""

from __future__ import annotations

from batcher.simulator.app import Simulator
from batcher.simulator.config import JobSpec, SimulatorConfig, load_jobs_file
from batcher.simulator.faults import SimulatorStats
from batcher.simulator.listing import LIMIT_MAX
from batcher.simulator.machine import RULES, rule_for
from batcher.simulator.record import Job, JobState, LogEntry, rfc3339
from batcher.simulator.serve import run_simulator
from batcher.simulator.world import default_world_path

__all__ = [
    "LIMIT_MAX",
    "RULES",
    "Job",
    "JobSpec",
    "JobState",
    "LogEntry",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "default_world_path",
    "load_jobs_file",
    "rfc3339",
    "rule_for",
    "run_simulator",
]
