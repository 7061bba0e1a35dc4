"""Sending: the MetaStudio client, signing, credentials, the limiter, retries, the runner.

The engine: entries in, report lines out, at the API's pace.

* :mod:`.runner` — N workers, per-job ordering, halting and signals
* :mod:`.signals` — SIGINT/SIGTERM from a command's start to its exit, one policy
* :mod:`.attempts` — one entry's attempts, and the truth after a lost answer
* :mod:`.confirm` — the job's record read to tell whether a command took effect
* :mod:`.reads` — List and Show, at the limiter's pace, under the retry rule
* :mod:`.retry` — the pure "wait this long, or give up" rule
* :mod:`.stats` — a run's options and counters
* :mod:`.limiter` — the rate limiter (a token bucket, :mod:`._bucket`, that adapts to
  429s, :mod:`._adapt`)
* :mod:`.progress` — what the run has done so far, for a display or a log line
"""

from __future__ import annotations
