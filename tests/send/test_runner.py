"""The runner against a scripted executor: ordering, retries, halting, bounded memory."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import anyio
import pytest

from batcher.entry import Entry, Outcome, key_digest
from batcher.journal.line import ReportLine
from batcher.send.limiter import RateLimiter
from batcher.send.retry import next_delay
from batcher.send.runner import Runner, RunOptions

OK = Outcome(succeeded=True, http_status=200, command_result="EXCUTE_SUCCESS")
Script = Callable[[Entry, int], Outcome]


class ScriptedClient:
    """Answers each attempt from ``script(entry, attempt_number)`` and records the traffic."""

    def __init__(self, script: Script | None = None, delay: float = 0.001) -> None:
        self.script = script or (lambda entry, attempt: OK)
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self.attempts: dict[tuple[str, str], int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.events: list[tuple[str, str, str]] = []  # (start|end, job, command)

    async def execute(self, entry: Entry) -> Outcome:
        key = entry.key
        self.calls.append(key)
        self.attempts[key] = self.attempts.get(key, 0) + 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.events.append(("start", *key))
        try:
            await anyio.sleep(self.delay)
            return self.script(entry, self.attempts[key])
        finally:
            self.in_flight -= 1
            self.events.append(("end", *key))


def entry(job: str, command: str = "SUBMITVERIFYING", line: int = 1) -> Entry:
    return Entry(job_id=job, command=command, source=f"m.yaml:{line}")


async def run(
    entries: list[Entry],
    client: ScriptedClient,
    limiter: RateLimiter | None = None,
    **options: object,
) -> tuple[list[ReportLine], Runner]:
    lines: list[ReportLine] = []
    opts = RunOptions(backoff_base=0.001, backoff_cap=0.01, handle_signals=False, **options)
    limiter = limiter or RateLimiter(rate=0)
    # Every line the runner writes must be a valid report line.
    runner = Runner(
        client=client,
        limiter=limiter,
        write=lambda line: lines.append(ReportLine.model_validate(line)),
        run_id="test-run",
        options=opts,
        rng=random.Random(1),
    )
    await runner.run(entries)
    return lines, runner


def by_key(lines: list[ReportLine]) -> dict[tuple[str, str], ReportLine]:
    keys = [line.key for line in lines]
    assert len(keys) == len(set(keys)), "exactly one line per entry"
    return {line.key: line for line in lines}


async def test_every_entry_gets_one_line_with_its_request_fields() -> None:
    entries = [entry(f"job{i}", line=i) for i in range(40)]
    lines, runner = await run(entries, ScriptedClient(), concurrency=8)
    got = by_key(lines)
    assert set(got) == {e.key for e in entries}
    assert all(line.status == "succeeded" and line.attempts == 1 for line in lines)
    assert got[("job7", "SUBMITVERIFYING")].source == "m.yaml:7"
    assert runner.stats.succeeded == 40 and runner.stats.attempts == 40


async def test_concurrency_is_never_exceeded() -> None:
    client = ScriptedClient(delay=0.005)
    await run([entry(f"j{i}") for i in range(60)], client, concurrency=5)
    assert client.max_in_flight == 5


async def test_commands_of_one_job_run_in_order_one_at_a_time() -> None:
    commands = ["CONFIRM_MULTIPART_UPLOADED", "SUBMITVERIFYING", "CONFIRM_ACCEPT"]
    # The job's commands are interleaved with other jobs in the manifest.
    entries = []
    for i, command in enumerate(commands):
        entries.append(entry("busy", command, line=10 * i))
        entries += [entry(f"other{i}-{k}") for k in range(5)]
    client = ScriptedClient(delay=0.002)
    lines, _ = await run(entries, client, concurrency=8)
    busy = [(kind, cmd) for kind, job, cmd in client.events if job == "busy"]
    assert busy == [(k, c) for c in commands for k in ("start", "end")]
    assert all(line.status == "succeeded" for line in lines)


async def test_a_failed_command_skips_the_jobs_later_commands_even_far_later() -> None:
    def script(e: Entry, attempt: int) -> Outcome:
        if e.job_id == "bad" and e.command == "CONFIRM_MULTIPART_UPLOADED":
            return Outcome(
                succeeded=False,
                reason="state forbids it",
                http_status=200,
                command_result="EXCUTE_FAILED",
                failed_msg="state forbids it",
            )
        return OK

    entries = [
        entry("bad", "CONFIRM_MULTIPART_UPLOADED", line=1),
        entry("bad", "SUBMITVERIFYING", line=2),
    ]
    entries += [entry(f"filler{i}", line=3 + i) for i in range(30)]
    entries.append(entry("bad", "CONFIRM_ACCEPT", line=99))
    client = ScriptedClient(script)
    lines, runner = await run(entries, client, concurrency=4)
    got = by_key(lines)
    assert got[("bad", "CONFIRM_MULTIPART_UPLOADED")].status == "failed"
    for command in ("SUBMITVERIFYING", "CONFIRM_ACCEPT"):
        skipped = got[("bad", command)]
        assert skipped.status == "skipped" and skipped.attempts == 0
        assert "CONFIRM_MULTIPART_UPLOADED (m.yaml:1)" in (skipped.reason or "")
        assert ("bad", command) not in client.calls
    assert runner.stats.skipped == 2 and runner.stats.failed == 1


async def test_retryable_failures_are_retried_then_succeed() -> None:
    def script(e: Entry, attempt: int) -> Outcome:
        if attempt < 3:
            return Outcome(
                succeeded=False,
                retryable=True,
                http_status=500,
                error_code="MSS.00000004",
                reason="HTTP 500",
            )
        return OK

    client = ScriptedClient(script)
    lines, _ = await run([entry("j1")], client)
    assert lines[0].status == "succeeded" and lines[0].attempts == 3
    assert client.attempts[("j1", "SUBMITVERIFYING")] == 3


async def test_retries_stop_at_max_attempts_and_say_so() -> None:
    always_500 = Outcome(succeeded=False, retryable=True, http_status=500, reason="HTTP 500")
    client = ScriptedClient(lambda e, a: always_500)
    lines, _ = await run([entry("j1")], client, max_attempts=4)
    line = lines[0]
    assert (line.status, line.attempts, line.retryable) == ("failed", 4, True)
    assert "gave up after 4 attempts" in (line.reason or "")


async def test_throttled_attempts_do_not_use_up_max_attempts() -> None:
    def script(e: Entry, attempt: int) -> Outcome:
        if attempt <= 6:
            return Outcome(
                succeeded=False,
                retryable=True,
                throttled=True,
                http_status=429,
                retry_after=0.0,
                reason="HTTP 429 APIGW.0308",
            )
        return OK

    lines, runner = await run(
        [entry("j1")],
        ScriptedClient(script),
        limiter=RateLimiter(rate=0, adaptive=False),
        max_attempts=2,
    )
    assert lines[0].status == "succeeded" and lines[0].attempts == 7
    assert runner.stats.throttled == 6


async def test_non_retryable_failure_is_not_retried() -> None:
    bad = Outcome(
        succeeded=False,
        http_status=400,
        error_code="MSS.00000003",
        error_msg="Invalid parameter",
        reason="HTTP 400 MSS.00000003",
    )
    client = ScriptedClient(lambda e, a: bad)
    lines, _ = await run([entry("j1")], client)
    assert lines[0].attempts == 1 and lines[0].error_code == "MSS.00000003"
    assert lines[0].retryable is False


def test_backoff_honours_retry_after_and_grows() -> None:
    policy = RunOptions(backoff_base=0.5, backoff_cap=30, max_attempts=20).retry
    rng = random.Random(7)

    def backoff(attempt: int, outcome: Outcome) -> float:
        delay = next_delay(policy, outcome, attempts=attempt, throttled=0, draw=rng.uniform)
        assert delay is not None
        return delay

    throttled = Outcome(succeeded=False, retryable=True, retry_after=4.0)
    assert all(backoff(1, throttled) >= 4.0 for _ in range(50))
    plain = Outcome(succeeded=False, retryable=True)
    assert max(backoff(1, plain) for _ in range(200)) <= 0.5
    assert max(backoff(10, plain) for _ in range(200)) <= 30
    assert max(backoff(10, plain) for _ in range(200)) > 5  # full jitter spans the range


async def test_auth_refusal_halts_and_skips_everything_not_attempted() -> None:
    refused = Outcome(
        succeeded=False,
        auth_refused=True,
        http_status=401,
        error_code="APIGW.0301",
        reason="authentication refused (HTTP 401)",
    )
    client = ScriptedClient(lambda e, a: refused if e.job_id == "j3" else OK, delay=0.002)
    entries = [entry(f"j{i}") for i in range(200)]
    lines, runner = await run(entries, client, concurrency=4)
    got = by_key(lines)
    assert len(got) == 200
    assert runner.stats.halted_reason and "authentication refused" in runner.stats.halted_reason
    # Only what was in flight when the 401 came back was sent after it.
    assert len(client.calls) <= 3 + 4 + 1
    skipped = [line for line in lines if line.status == "skipped"]
    assert len(skipped) == 200 - len(client.calls)
    assert all("authentication refused" in (line.reason or "") for line in skipped)
    assert got[("j3", "SUBMITVERIFYING")].status == "failed"


async def test_max_failures_halts() -> None:
    bad = Outcome(succeeded=False, http_status=200, command_result="EXCUTE_FAILED", reason="no")
    client = ScriptedClient(lambda e, a: bad)
    lines, runner = await run(
        [entry(f"j{i}") for i in range(100)], client, concurrency=2, max_failures=5
    )
    assert "--max-failures 5" in (runner.stats.halted_reason or "")
    assert runner.stats.failed <= 5 + 2
    assert len(lines) == 100
    assert runner.stats.skipped == 100 - runner.stats.failed


async def test_max_failure_rate_waits_for_the_minimum_sample() -> None:
    # Every third entry fails: 33% > 20%, but only judged after 30 finished entries.
    def script(e: Entry, attempt: int) -> Outcome:
        return OK if int(e.job_id[1:]) % 3 else Outcome(succeeded=False, reason="no")

    lines, runner = await run(
        [entry(f"j{i}") for i in range(300)],
        ScriptedClient(script),
        concurrency=1,
        max_failure_rate=0.2,
        failure_rate_min_sample=30,
    )
    finished = runner.stats.succeeded + runner.stats.failed
    assert runner.stats.halted_reason and "--max-failure-rate 0.2" in runner.stats.halted_reason
    assert 30 <= finished <= 32
    assert len(lines) == 300


async def test_resume_keys_are_not_sent_and_get_no_line() -> None:
    entries = [entry(f"j{i}") for i in range(10)]
    done = {key_digest(e.job_id, e.command) for e in entries[:6]}
    client = ScriptedClient()
    lines: list[dict[str, object]] = []
    runner = Runner(
        client=client,
        limiter=RateLimiter(rate=0),
        write=lines.append,
        run_id="r2",
        options=RunOptions(handle_signals=False),
        done_keys=done,
    )
    stats = await runner.run(entries)
    assert sorted(client.calls) == sorted(e.key for e in entries[6:])
    assert stats.already_done == 6 and len(lines) == 4


async def test_entries_passed_over_by_the_manifest_are_counted_as_done() -> None:
    # The second pass yields None for an entry it found done without building it.
    entries = [None if i % 3 == 0 else entry(f"j{i}") for i in range(12)]
    client = ScriptedClient()
    lines: list[dict[str, object]] = []
    runner = Runner(
        client=client,
        limiter=RateLimiter(rate=0),
        write=lines.append,
        run_id="r3",
        options=RunOptions(handle_signals=False, limit=5),
    )
    stats = await runner.run(entries)
    assert [key[0] for key in client.calls] == ["j1", "j2", "j4", "j5", "j7"]
    # --limit reached: the rest is read through to tell whether any is left, and the
    # passed-over ones on the way are counted too.
    assert stats.already_done == 4 and stats.left_by_limit and len(lines) == 5


async def test_limit_with_fewer_entries_left_than_workers_still_says_some_are_left() -> None:
    # Every idle worker reads on for one entry left: the ones that find none after the
    # last must not turn "left" back into "none left".
    entries = [entry(f"j{i}") for i in range(8)]
    client = ScriptedClient()
    runner = Runner(
        client=client,
        limiter=RateLimiter(rate=0),
        write=lambda line: None,
        run_id="r4",
        options=RunOptions(handle_signals=False, limit=5, concurrency=16),
    )
    stats = await runner.run(entries)
    assert len(client.calls) == 5 and stats.left_by_limit


async def test_the_producer_reads_ahead_only_as_far_as_the_workers() -> None:
    consumed = 0
    client = ScriptedClient(delay=0.001)

    def entries() -> Iterator[Entry]:
        nonlocal consumed
        for i in range(500):
            consumed += 1
            # Never more than the workers plus the one being handed over are read ahead.
            assert consumed - len(client.calls) <= 4 + 2
            yield entry(f"j{i}")

    lines, _ = await run(list_free(entries()), client, concurrency=4)
    assert len(lines) == 500


def list_free(iterator: Iterator[Entry]) -> Iterator[Entry]:
    """Pass the generator through untouched (the runner must not call list() on it)."""
    yield from iterator


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_entries_queued_behind_a_busy_job_are_bounded(concurrency: int) -> None:
    # 50 commands for one job: the producer pauses once max_waiting are queued.
    commands = [f"CMD_{i}" for i in range(50)]
    entries = [entry("same", command) for command in commands]
    client = ScriptedClient(delay=0.0005)
    lines, _ = await run(entries, client, concurrency=concurrency, max_waiting=5)
    assert [c for _, c in client.calls] == commands
    assert len(lines) == 50


async def test_after_a_halt_a_jobs_queued_commands_are_skipped_with_the_halt_reason() -> None:
    refused = Outcome(
        succeeded=False,
        auth_refused=True,
        http_status=403,
        reason="authentication refused (HTTP 403)",
    )
    client = ScriptedClient(lambda e, a: refused)
    entries = [entry("a", "CONFIRM_MULTIPART_UPLOADED"), entry("a", "SUBMITVERIFYING")]
    lines, _ = await run(entries, client, concurrency=1)
    got = by_key(lines)
    assert got[("a", "CONFIRM_MULTIPART_UPLOADED")].status == "failed"
    second = got[("a", "SUBMITVERIFYING")]
    assert second.status == "skipped" and "run was halted" in (second.reason or "")
