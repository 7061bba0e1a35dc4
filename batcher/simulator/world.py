"""One simulated world shared by every process: the seed and every change, kept in a file.

``batcher select --simulate … | batcher run - --simulate …`` runs two processes, each with
its own in-process simulator; they must see the same jobs. The world file is a JSON-lines
journal: a header naming the seed (population, seed, the instant seeded times end at),
then one line per request that changed a job (a command that reached a job, which also
creates a job seen for the first time, or an Update that took effect). Each simulator
replays the journal when it opens the file, and before every request, under an exclusive
``flock``, reads the lines others appended since, so consecutive and concurrent processes
see one world. A world no process has open, and none has touched for :data:`IDLE_SECONDS`,
starts afresh (so the README's demo, tried again another time, starts from the seed, while a
pipeline, or ``status`` after ``run``, sees one world); deleting the file resets it at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from batcher.simulator.config import SimulatorConfig
from batcher.simulator.population import default_until

Event = dict[str, Any]

#: The header's version: a file written by another version is refused, never misread.
_VERSION = 1
#: How long a world lasts untouched (no process opened it or sent a request to it) and
#: unused (no process has it open).
IDLE_SECONDS = 600.0


def default_world_path(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/batcher/simulated-world.jsonl`` (``~/.local/state`` without it).

    >>> default_world_path({"XDG_STATE_HOME": "/tmp/s"}).as_posix()
    '/tmp/s/batcher/simulated-world.jsonl'
    """
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "batcher" / "simulated-world.jsonl"


class WorldFile:
    """The journal of one world, open for the life of a simulator.

    ``seed`` is the header a new file gets; an existing file's header wins (:attr:`seed`).
    """

    def __init__(self, path: Path, seed: Event) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[bytes] = open(path, "a+b")  # noqa: SIM115 - closed by close()
        self._offset = 0
        # Held shared while this simulator lives: a world someone has open is never reset.
        self._users: IO[bytes] = open(path.with_name(path.name + ".users"), "a+b")  # noqa: SIM115
        with self._locked():
            if self._idle():
                self._file.truncate(0)  # nobody has used it for a while: a new world
            fcntl.flock(self._users.fileno(), fcntl.LOCK_SH)
            header = self._read_new()
            if not header:
                self._append({"world": _VERSION, **seed})
                header = [{"world": _VERSION, **seed}]
            os.utime(self._file.fileno())
        self.seed: Event = header[0]
        if not isinstance(self.seed, dict) or self.seed.get("world") != _VERSION:
            self.close()
            raise ValueError(f"{path}: not a simulated world of this batcher; delete it to reset")
        self._pending = header[1:]

    def seed_fields(self) -> dict[str, Any]:
        """The config fields that seed this world (what the header says)."""
        return {k: self.seed[k] for k in ("population", "seed", "population_until", "jobs")}

    def close(self) -> None:
        self._file.close()
        self._users.close()

    def _idle(self) -> bool:
        if time.time() - os.fstat(self._file.fileno()).st_mtime <= IDLE_SECONDS:
            return False
        try:  # nobody else has it open?
            fcntl.flock(self._users.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)

    def _read_new(self) -> list[Event]:
        self._file.seek(self._offset)
        data = self._file.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
        self._offset += len(complete)
        try:
            return [json.loads(line) for line in complete.splitlines() if line.strip()]
        except ValueError:
            raise ValueError(f"{self.path}: not a simulated world; delete it to reset") from None

    def _append(self, event: Event) -> None:
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        self._file.write(line)
        self._file.flush()
        self._offset += len(line)

    @contextmanager
    def turn(self, apply: Callable[[Event], None]) -> Iterator[Callable[[Event], None]]:
        """Hold the world: replay what others did since (``apply``), then let the caller
        act and record its changes with the function yielded."""
        with self._locked():
            for event in (*self._pending, *self._read_new()):
                apply(event)
            self._pending = []
            os.utime(self._file.fileno())  # a request touches the world, even a read
            yield self._append


def open_world(config: SimulatorConfig) -> WorldFile | None:
    """The world file ``config`` names, opened (and made, seeded as ``config`` says, when
    it does not exist yet); None without one."""
    if config.world_file is None:
        return None
    until = config.population_until or default_until()
    seed = config.model_dump(mode="json", include={"population", "seed", "jobs"})
    return WorldFile(config.world_file, seed | {"population_until": until.isoformat()})
