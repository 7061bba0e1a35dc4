"""A local MetaStudio: the training-job command endpoint, its gateway, and faults on demand.

Serves ``POST /v1/{project_id}/digital-human-training-manage/user/jobs/{job_id}/command``
with the API's shapes, verifies AK/SK signatures and tokens like the cloud's gateway, keeps
per-job state (see :mod:`batcher.simulator.state`), and injects seeded latency, 500s, 429s
and dropped connections. Also ``GET /__simulator/health``, ``/__simulator/stats`` (see
:class:`SimulatorStats`) and ``/__simulator/jobs``.

>>> async def demo():
...     config = SimulatorConfig(credentials={"AK": "SK"}, seed=1, error_rate=0.1)
...     async with run_simulator(config) as sim:
...         ...  # point a client at sim.url; afterwards read sim.stats, sim.job_state("j1")

The ``--jobs`` seed file format is in :mod:`batcher.simulator.config`.
"""

from __future__ import annotations

from .app import COMMAND_PATH, Simulator, run_simulator, run_simulator_in_thread
from .config import SimulatorConfig, load_jobs_file
from .faults import SimulatorStats
from .state import Job, JobState

__all__ = [
    "COMMAND_PATH",
    "Job",
    "JobState",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "load_jobs_file",
    "run_simulator",
    "run_simulator_in_thread",
]
