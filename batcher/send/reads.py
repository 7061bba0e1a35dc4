"""Every request at the API's pace, under the one retry rule: commands and reads (List, Show).

The API counts its command interface and its reads against separate quotas, so commands
take their slots from one limiter and reads from another (the same one when no other is
given); each request reports its answer as evidence to the limiter it came through, and
is retried by the one retry rule. A read changes nothing, so any read that did not succeed
may be sent again.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import anyio
import structlog

from batcher.entry import Outcome
from batcher.send.client import Reply
from batcher.send.limiter import RateLimiter
from batcher.send.retry import RetryPolicy, next_delay
from batcher.send.stats import RunStats

log = structlog.get_logger("batcher.calls")

#: Runs a wait (the limiter's, a backoff) that something may cut short; True if it ran out.
Waiter = Callable[[Callable[[], Awaitable[object]]], Awaitable[bool]]


async def plain_wait(waiter: Callable[[], Awaitable[object]]) -> bool:
    await waiter()
    return True


class Pacer:
    """Sends requests at their limiter's pace and retries them by the retry rule.

    ``limiter`` paces commands (:meth:`slot`, :meth:`note`), ``read_limiter`` reads
    (:meth:`read`; by default the same limiter).

    ``wait`` runs every wait (a runner passes one that a halt cuts short); ``halted`` says
    whether to stop trying. Stops, without retrying, on an answer that halts a run
    (401/403, a TLS failure): ``on_halt`` hears why.

    >>> pacer = Pacer(RateLimiter(rate=5), RetryPolicy())  # doctest: +SKIP
    >>> reply = await pacer.read(lambda: client.show_job("job-1"))  # doctest: +SKIP
    """

    def __init__(
        self,
        limiter: RateLimiter,
        policy: RetryPolicy,
        *,
        rng: random.Random | None = None,
        wait: Waiter = plain_wait,
        halted: Callable[[], bool] = lambda: False,
        on_halt: Callable[[str], None] | None = None,
        counts: RunStats | None = None,
        read_limiter: RateLimiter | None = None,
    ) -> None:
        self.limiter = limiter
        self.read_limiter = read_limiter or limiter
        self.policy = policy
        self._rng = rng or random.Random()
        self._wait = wait
        self._halted = halted
        self._on_halt = on_halt
        self._counts = counts
        #: Requests sent, and those the API answered 429.
        self.requests = 0
        self.throttled = 0

    async def slot(self, limiter: RateLimiter | None = None) -> bool:
        """Wait for the next slot of ``limiter`` (the commands'); False when the wait was
        cut short."""
        limiter = limiter or self.limiter
        delay = limiter.reserve()
        if delay <= 0:
            return True
        return await self._wait(lambda: limiter.wait(delay))

    def note(self, outcome: Outcome, limiter: RateLimiter | None = None) -> None:
        """Count a request and give its answer to ``limiter`` (the commands') as evidence."""
        self.requests += 1
        if outcome.http_status is not None:  # an answer: evidence about the quota
            # A 429 states the quota ("limit:20,time:1 second") and when to come back.
            (limiter or self.limiter).on_response(
                throttled=outcome.throttled,
                error_msg=outcome.error_msg if outcome.throttled else None,
                retry_after=outcome.retry_after,
            )
        if outcome.throttled:
            self.throttled += 1
            if self._counts is not None:
                self._counts.throttled += 1

    def halts(self, outcome: Outcome) -> str | None:
        """Why this answer must halt the run (401/403, TLS), or None."""
        if outcome.auth_refused:  # the reason says so once, with the API's code and message
            return outcome.reason or "authentication refused by the API"
        if outcome.fatal:
            return outcome.reason or "a setting no retry can fix"
        return None

    async def backoff(self, outcome: Outcome, *, attempts: int, throttled: int) -> bool:
        """Wait before the next attempt; False to give up (the rule says so, or halted)."""
        delay = next_delay(
            self.policy, outcome, attempts=attempts, throttled=throttled, draw=self._rng.uniform
        )
        if delay is None:
            return False
        return await self._wait(lambda: anyio.sleep(delay))

    async def read(
        self, send: Callable[[], Awaitable[Reply]], *, refusal_halts: bool = True
    ) -> Reply:
        """Send a read until it succeeds, the retry rule gives up, or the run halts.

        ``refusal_halts=False`` for reads the run can do without (a job's record): a 401
        or 403 there says the credentials may not read it, not that they cannot run
        commands, and is returned like any other refusal."""
        attempts = throttled = 0
        reply = Reply(Outcome(succeeded=False, reason="not sent: the run was halted"))
        while not self._halted():
            if not await self.slot(self.read_limiter):
                continue  # cut short: the loop's condition says why
            reply = await send()
            outcome = reply.outcome
            self.note(outcome, self.read_limiter)
            attempts += 1
            throttled += outcome.throttled
            if outcome.succeeded:
                return reply
            why = self.halts(outcome)
            if why is not None:
                if refusal_halts and self._on_halt is not None:
                    self._on_halt(why)
                return reply
            if not outcome.retryable:  # a 400 or 404 says the same the next time
                return reply
            if not await self.backoff(outcome, attempts=attempts, throttled=throttled):
                return reply
            log.debug("read_retrying", attempt=attempts, reason=outcome.reason)
        return reply
