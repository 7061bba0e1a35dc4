"""After an answer is lost, the line tells the truth: the job's record decides.

A scripted API keeps a record per job (state and operation log) that commands change only
when the script says they took effect; answers can be lost after the effect (the hard
case) or before it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import pytest

from batcher.entry import Entry, Outcome, key_digest
from batcher.journal.line import ReportLine
from batcher.send.client import Reply
from batcher.send.limiter import RateLimiter
from batcher.send.runner import Runner
from batcher.send.stats import RunOptions

OK = Outcome(succeeded=True, http_status=200, command_result="EXCUTE_SUCCESS")
LOST = Outcome(
    succeeded=False, retryable=True, ambiguous=True, still_running=True,
    reason="timed out after 5s",
)  # fmt: skip
SERVER_ERROR = Outcome(
    succeeded=False, retryable=True, ambiguous=True, http_status=500,
    reason="HTTP 500 MSS.00000004",
)  # fmt: skip
LOG_OF = {
    "SUBMITVERIFYING": "USER_VERIFYING_SUBMITTED",
    "CONFIRM_REPAIR": "USER_REPAIR",
    "DELETE_JOB_VIDEO": "USER_DELETE_JOB_VIDEO",
}
COMMENT_OF = {"CONFIRM_REJECT": "USER_REJECT", "CONFIRM_ANSWER": "USER_COMMENT"}
#: Commands the API accepts again (each time with its effect).
REPEATABLE = {"DELETE_JOB_VIDEO"}


def refused(why: str = "state does not allow it") -> Outcome:
    return Outcome(
        succeeded=False,
        http_status=200,
        command_result="EXCUTE_FAILED",
        failed_msg=why,
        reason=why,
    )


@dataclass
class Job:
    state: str = "WAIT_FILE_UPLOAD"
    logs: list[dict[str, str]] = field(default_factory=list)
    comments: list[dict[str, str]] = field(default_factory=list)
    done: set[str] = field(default_factory=set)


class RecordedAPI:
    """Commands take effect once (a second attempt is refused, reads excepted);
    ``plan[(job, n)]`` says what happens to attempt n of the job's first command: "ok",
    "lost-after" (effect, answer lost), "lost-before" (no effect, answer lost), "refuse",
    "error-after" (effect, then a 500), "error-before" (a 500, no effect)."""

    def __init__(self, plan: dict[tuple[str, int], str], *, show: str = "ok") -> None:
        self.plan = plan
        self.show = show  # "ok", "forbidden", "refused" (403), "down" (500), "no-logs"
        self.pending: list[tuple[float, Entry]] = []  # effects still on their way
        self.jobs: dict[str, Job] = {}
        self.attempts: dict[tuple[str, str], int] = {}
        self.first: dict[str, str] = {}
        self.executions: dict[tuple[str, str], int] = {}
        self.shows = 0
        self.clock_skew = timedelta(0)  # the server's clock (its log), against ours
        self.date_skew: timedelta | None = None  # the Date header's, if not the same
        self.no_date = False  # answers without a Date header (a proxy stripped it)
        self.log_lag = 0.0  # how long an effect's log entry takes to show in Show
        self.moves: dict[str, str] = {}  # command -> the state its effect moves the job to
        self.late_logs: list[tuple[float, Job, dict[str, str]]] = []

    def job(self, job_id: str) -> Job:
        return self.jobs.setdefault(job_id, Job())

    def _take_effect(self, entry: Entry) -> None:
        job = self.job(entry.job_id)
        if not entry.command.startswith("GET_") and entry.command not in REPEATABLE:
            job.done.add(entry.command)
        key = (entry.job_id, entry.command)
        self.executions[key] = self.executions.get(key, 0) + 1
        stamp = (datetime.now(UTC) + self.clock_skew).strftime("%Y-%m-%dT%H:%M:%SZ")
        job.state = self.moves.get(entry.command, job.state)
        if entry.command in LOG_OF:
            logged = {"log_type": LOG_OF[entry.command], "operate_time": stamp}
            if self.log_lag:
                self.late_logs.append((anyio.current_time() + self.log_lag, job, logged))
            else:
                job.logs.append({**logged, "operate_user": "USER"})
        if entry.command in COMMENT_OF:
            job.comments.append({"comment_type": COMMENT_OF[entry.command], "operate_time": stamp})

    def _arrive(self) -> None:
        """Effects whose time has come (a request that was still queued on the server)."""
        now = anyio.current_time()
        for due in [p for p in self.pending if p[0] <= now]:
            self.pending.remove(due)
            self._take_effect(due[1])

    async def execute(self, entry: Entry) -> Outcome:
        self._arrive()
        key = (entry.job_id, entry.command)
        n = self.attempts[key] = self.attempts.get(key, 0) + 1
        first = self.first.setdefault(entry.job_id, entry.command)
        what = self.plan.get((entry.job_id, n), "ok") if entry.command == first else "ok"
        if what == "refuse" or (what == "ok" and entry.command in self.job(entry.job_id).done):
            return refused()
        if what == "lost-before":
            return LOST
        if what.startswith("slow"):  # answered a while later (still in flight meanwhile)
            await anyio.sleep(0.3)
            if what == "slow-refuse":
                return refused()
        if what == "error-before":
            return SERVER_ERROR
        if what == "lost-late":  # timed out while queued: it runs 0.2 s later
            self.pending.append((anyio.current_time() + 0.2, entry))
            return LOST
        self._take_effect(entry)
        if what == "error-after":
            return SERVER_ERROR
        return LOST if what == "lost-after" else OK

    async def show_job(
        self, job_id: str, *, project_id: str | None = None, app_user_id: str | None = None
    ) -> Reply:
        self.shows += 1
        self._arrive()
        if self.show == "forbidden":
            return Reply(Outcome(succeeded=False, http_status=404, reason="HTTP 404: no such job"))
        if self.show == "refused":
            return Reply(
                Outcome(
                    succeeded=False, http_status=403, auth_refused=True,
                    reason="authentication refused (HTTP 403 APIGW.0302: no permission)",
                )
            )  # fmt: skip
        if self.show == "down":
            return Reply(
                Outcome(succeeded=False, http_status=500, retryable=True, reason="HTTP 500")
            )
        for due in [late for late in self.late_logs if late[0] <= anyio.current_time()]:
            self.late_logs.remove(due)
            due[1].logs.append({**due[2], "operate_user": "USER"})
        job = self.job(job_id)
        data: dict[str, Any] = {"job_id": job_id, "state": job.state}
        if self.show != "no-logs":
            data["operation_logs"] = list(job.logs)
            data["comment_logs"] = list(job.comments)
        date = None
        if not self.no_date:
            skew = self.clock_skew if self.date_skew is None else self.date_skew
            date = format_datetime(datetime.now(UTC) + skew, usegmt=True)
        return Reply(Outcome(succeeded=True, http_status=200), data, date)


def entry(job: str, command: str = "SUBMITVERIFYING", **fields: Any) -> Entry:
    return Entry(job_id=job, command=command, source=f"m.csv:{job}", **fields)


def measure(runner: Runner, api: RecordedAPI) -> None:
    """As if the run had already measured the record's clock (to a second either way) on
    commands it saw succeed; the tests of that measuring are in test_truth_clocks.py."""
    now = datetime.now(UTC)
    runner.confirmer.clocks.note_newest(now + api.clock_skew, received_at=now)
    runner.confirmer.clocks.note_caused(now + api.clock_skew, sent_at=now)


async def run(
    entries: list[Entry], api: RecordedAPI, **options: Any
) -> tuple[dict[tuple[str, str], ReportLine], Runner]:
    lines: list[ReportLine] = []
    doubts = options.pop("doubts", None)
    measured = options.pop("measured", True)
    opts = RunOptions(backoff_base=0.001, backoff_cap=0.01, handle_signals=False, **options)
    runner = Runner(
        client=api,
        limiter=RateLimiter(rate=0),
        write=lambda line: lines.append(ReportLine.model_validate(line)),
        run_id="r",
        options=opts,
        doubts=doubts,
        rng=random.Random(3),
    )
    if measured:
        measure(runner, api)
    await runner.run(entries)
    assert len(lines) == len({line.key for line in lines})  # one line per entry
    return {line.key: line for line in lines}, runner


async def test_an_answer_lost_after_the_effect_is_confirmed_from_the_operation_log() -> None:
    api = RecordedAPI({("j1", 1): "lost-after"})
    got, runner = await run([entry("j1"), entry("j1", "CONFIRM_ACCEPT")], api)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "succeeded" and line.confirmed_by == "operation_log"
    assert line.attempts == 1 and not line.ambiguous and line.reason is None
    assert api.executions[("j1", "SUBMITVERIFYING")] == 1  # never sent twice
    assert got[("j1", "CONFIRM_ACCEPT")].status == "succeeded"  # the job's next command ran
    assert runner.stats.confirmed == 1 and runner.stats.checks == 1


async def test_an_answer_lost_before_the_effect_is_sent_again() -> None:
    api = RecordedAPI({("j1", 1): "lost-before"})
    got, _ = await run([entry("j1")], api)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "succeeded" and line.confirmed_by is None and line.attempts == 2
    assert api.executions[("j1", "SUBMITVERIFYING")] == 1 and api.shows == 1


async def test_a_refusal_after_a_lost_answer_that_did_nothing_is_a_plain_failure() -> None:
    # The lost answer was itself a refusal: the record shows nothing, so "failed" is true.
    api = RecordedAPI({("j1", 1): "lost-before", ("j1", 2): "refuse"})
    got, runner = await run([entry("j1"), entry("j1", "CONFIRM_REPAIR")], api)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "failed" and not line.ambiguous and line.confirmed_by is None
    assert "may have executed" not in (line.reason or "")
    assert got[("j1", "CONFIRM_REPAIR")].status == "skipped"
    assert runner.stats.ambiguous == 0


async def test_a_late_effect_behind_a_refusal_is_found_by_the_last_check() -> None:
    # Attempt 1's answer was lost and the record showed nothing yet; it executed late, so
    # attempt 2 is refused. The record, read again, shows attempt 1's entry: succeeded.
    api = RecordedAPI({("j1", 1): "lost-before", ("j1", 2): "refuse"})
    original = api.show_job
    calls = {"n": 0}

    async def show_then_execute(job_id: str, **kwargs: Any) -> Reply:
        calls["n"] += 1
        reply = await original(job_id, **kwargs)
        if calls["n"] == 1:  # the first attempt lands after the first look
            api._take_effect(entry("j1"))
        return reply

    api.show_job = show_then_execute  # type: ignore[method-assign]
    got, _ = await run([entry("j1")], api)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "succeeded" and line.confirmed_by == "operation_log"
    assert line.attempts == 2 and calls["n"] == 2


async def test_a_command_that_leaves_no_trace_is_not_sent_again_in_doubt() -> None:
    # Sent again, it could run twice (the API accepts some commands again).
    api = RecordedAPI({("j1", 1): "lost-after"})
    got, runner = await run([entry("j1", "CONFIRM_AUTHORIZATION_LETTER")], api)
    line = got[("j1", "CONFIRM_AUTHORIZATION_LETTER")]
    assert line.status == "failed" and line.ambiguous is True and not line.retryable
    assert line.attempts == 1 and "may have executed" in (line.reason or "")
    assert api.shows == 0  # nothing to read: the record cannot tell
    assert runner.stats.ambiguous == 1


async def test_when_the_record_cannot_be_read_the_command_is_not_sent_again() -> None:
    api = RecordedAPI({("j1", 1): "lost-after"}, show="forbidden")
    got, _ = await run([entry("j1")], api)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "failed" and line.ambiguous is True and not line.retryable
    assert line.attempts == 1 and api.shows == 1


async def test_a_record_without_an_operation_log_cannot_tell() -> None:
    api = RecordedAPI({("j1", 1): "lost-after"}, show="no-logs")
    got, _ = await run([entry("j1")], api)
    assert got[("j1", "SUBMITVERIFYING")].ambiguous is True


async def test_read_only_commands_are_simply_retried() -> None:
    api = RecordedAPI({("j1", 1): "lost-after", ("j1", 2): "lost-after"})
    got, _ = await run([entry("j1", "GET_MULTIPART_UPLOADED")], api)
    line = got[("j1", "GET_MULTIPART_UPLOADED")]
    assert line.status == "succeeded" and line.attempts == 3 and api.shows == 0


async def test_attempts_run_out_while_in_doubt_the_record_decides() -> None:
    plan = {("j1", n): "lost-before" for n in range(1, 4)}
    api = RecordedAPI(plan)
    got, _ = await run([entry("j1")], api, max_attempts=3)
    line = got[("j1", "SUBMITVERIFYING")]
    # The record said "not executed" every time: a plain, retryable failure.
    assert line.status == "failed" and line.retryable and not line.ambiguous
    assert "gave up after 3 attempts" in (line.reason or "")


async def test_a_server_clock_behind_ours_is_allowed_for() -> None:
    # The server's clock (its log, its Date header) is 90 s behind ours: the offset
    # measured from the Date header finds the entry.
    api = RecordedAPI({("j1", 1): "lost-after"})
    api.clock_skew = timedelta(seconds=-90)
    got, _ = await run([entry("j1")], api)
    assert got[("j1", "SUBMITVERIFYING")].confirmed_by == "operation_log"


async def test_a_log_clock_behind_the_date_header_is_not_read_as_did_not() -> None:
    # The gateway's Date is right, the service logs 10 s behind it, and nothing measured
    # the log's clock: the entry cannot be placed, which is not "did not". Not sent again
    # (it could run twice), and the line says it may have run.
    api = RecordedAPI({("j1", 1): "lost-after"})
    api.date_skew = timedelta(0)
    api.clock_skew = timedelta(seconds=-10)
    got, _ = await run([entry("j1")], api, measured=False)
    line = got[("j1", "SUBMITVERIFYING")]
    assert api.executions[("j1", "SUBMITVERIFYING")] == 1
    assert line.status == "failed" and line.ambiguous is True


async def test_without_a_date_header_an_earlier_entry_is_not_taken_for_this_attempt() -> None:
    # A proxy stripped Date: the clocks may be 2 minutes apart either way. The job's log has
    # SUBMITVERIFYING from a minute ago (an earlier action), this attempt did nothing: it
    # must not be confirmed from that entry.
    api = RecordedAPI({("j1", 1): "lost-before"})
    api.no_date = True
    earlier = datetime.now(UTC) - timedelta(minutes=1)
    api.job("j1").logs.append(
        {
            "log_type": "USER_VERIFYING_SUBMITTED",
            "operate_time": earlier.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "operate_user": "USER",
        }
    )
    got, _ = await run([entry("j1")], api)
    line = got[("j1", "SUBMITVERIFYING")]
    assert api.executions.get(("j1", "SUBMITVERIFYING")) == 1  # it ran: sent again
    assert line.status == "succeeded" and line.confirmed_by is None


async def test_a_measured_clock_still_tells_an_attempt_that_did_nothing() -> None:
    api = RecordedAPI({("j1", 1): "lost-before"})
    got, _ = await run([entry("j1")], api)
    assert got[("j1", "SUBMITVERIFYING")].status == "succeeded"  # sent again, ran once
    assert api.executions[("j1", "SUBMITVERIFYING")] == 1


async def test_an_old_entry_of_the_same_kind_is_not_mistaken_for_this_attempt() -> None:
    api = RecordedAPI({("j1", 1): "lost-before", ("j1", 2): "refuse"})
    old = datetime.now(UTC) - timedelta(hours=3)
    api.job("j1").logs.append(
        {
            "log_type": "USER_VERIFYING_SUBMITTED",
            "operate_time": old.isoformat(),
            "operate_user": "USER",
        }
    )
    got, _ = await run([entry("j1")], api)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "failed" and line.confirmed_by is None


@pytest.mark.parametrize("effect", [True, False])
async def test_resume_checks_entries_in_doubt_before_sending_them(effect: bool) -> None:
    api = RecordedAPI({})
    since = datetime.now(UTC) - timedelta(seconds=30)
    if effect:  # the crashed run's request did execute
        api._take_effect(entry("j1"))
        api.attempts.clear()
    doubts = {key_digest("j1", "SUBMITVERIFYING"): since}
    got, _ = await run([entry("j1"), entry("j2")], api, doubts=doubts)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "succeeded"
    if effect:
        assert line.confirmed_by == "operation_log" and line.attempts == 0
        assert ("j1", "SUBMITVERIFYING") not in api.attempts
    else:
        assert line.confirmed_by is None and line.attempts == 1
    assert api.shows == 1  # only the entry in doubt was checked
    assert api.executions[("j1", "SUBMITVERIFYING")] == 1


async def test_limit_runs_at_most_n_entries_not_yet_done() -> None:
    api = RecordedAPI({})
    entries = [entry(f"j{i}") for i in range(10)]
    got, runner = await run(entries, api, limit=4, concurrency=2)
    assert len(got) == 4 and all(line.status == "succeeded" for line in got.values())
    assert runner.stats.left_by_limit
    assert sum(api.executions.values()) == 4


async def test_limit_equal_to_the_entries_leaves_nothing() -> None:
    api = RecordedAPI({})
    got, runner = await run([entry(f"j{i}") for i in range(3)], api, limit=3)
    assert len(got) == 3 and not runner.stats.left_by_limit


async def test_an_entry_in_doubt_skipped_by_a_halt_stays_in_doubt() -> None:
    api = RecordedAPI({("j0", 1): "refuse"})
    since = datetime(2026, 11, 24, 13, 0, 5, tzinfo=UTC)
    doubts = {key_digest("j1", "SUBMITVERIFYING"): since}
    got, runner = await run(
        [entry("j0"), entry("j1")], api, doubts=doubts, max_failures=1, concurrency=1
    )
    assert runner.stats.halted_reason
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "skipped" and line.ambiguous
    assert line.started_at is None  # no earlier run's time: nothing was sent in this one
    assert line.doubt_since is not None and line.doubt_since.startswith("2026-11-24T13:00:05")
    assert "--resume reads the job's record first" in (line.reason or "")
    assert ("j1", "SUBMITVERIFYING") not in api.attempts


async def test_an_earlier_look_at_the_record_does_not_decide_a_later_lost_attempt() -> None:
    """Attempt 1 is lost and the record shows it did nothing; attempt 2 is lost too, and a
    hard stop leaves no time to look again: the line must stay in doubt, not say "failed"
    on the strength of the look taken before attempt 2."""
    api = RecordedAPI({("j1", 1): "lost-before", ("j1", 2): "lost-after"})
    lines: list[ReportLine] = []
    runner = Runner(
        client=api,
        limiter=RateLimiter(rate=0),
        write=lambda line: lines.append(ReportLine.model_validate(line)),
        run_id="r",
        options=RunOptions(backoff_base=0.001, backoff_cap=0.01, handle_signals=False),
        rng=random.Random(3),
    )
    execute = api.execute

    async def execute_then_hard_stop(e: Entry) -> Outcome:
        outcome = await execute(e)
        if api.attempts[(e.job_id, e.command)] == 2:
            runner.hard_stop()
        return outcome

    api.execute = execute_then_hard_stop  # type: ignore[method-assign]
    await runner.run([entry("j1")])
    (line,) = lines
    assert api.executions[("j1", "SUBMITVERIFYING")] == 1  # attempt 2 took effect
    assert api.shows == 1
    assert line.status == "failed" and line.ambiguous


async def test_a_read_whose_answer_is_lost_is_asked_again() -> None:
    """Even when the lost answer is not one to retry for a command (an unreadable 200):
    asking again changes nothing."""
    api = RecordedAPI({})
    execute = api.execute
    unreadable = Outcome(succeeded=False, ambiguous=True, reason="the answer could not be read")

    async def lose_the_first(e: Entry) -> Outcome:
        outcome = await execute(e)
        return unreadable if api.attempts[(e.job_id, e.command)] == 1 else outcome

    api.execute = lose_the_first  # type: ignore[method-assign]
    got, _ = await run([entry("j1", "GET_MULTIPART_UPLOADED")], api)
    line = got[("j1", "GET_MULTIPART_UPLOADED")]
    assert line.status == "succeeded" and line.attempts == 2 and not line.ambiguous
    assert api.shows == 0  # a read changes nothing: no record to check


def runner_for(api: RecordedAPI, lines: list[ReportLine], **options: Any) -> Runner:
    return Runner(
        client=api,
        limiter=RateLimiter(rate=0),
        write=lambda line: lines.append(ReportLine.model_validate(line)),
        run_id="r",
        options=RunOptions(handle_signals=False, **options),
        rng=random.Random(3),
    )


async def test_a_backoff_that_begins_after_a_halt_does_not_wait() -> None:
    """The halt comes while a request is in flight; the answer then asks for a retry: the
    run ends now, not after a backoff that no retry will follow."""
    api = RecordedAPI({})
    lines: list[ReportLine] = []
    runner = runner_for(api, lines, backoff_base=60, backoff_cap=60)

    async def halted_mid_request(e: Entry) -> Outcome:
        runner.halt("SIGTERM")
        return Outcome(succeeded=False, retryable=True, http_status=503, reason="HTTP 503")

    api.execute = halted_mid_request  # type: ignore[method-assign]
    with anyio.fail_after(10):
        await runner.run([entry("j1")])
    (line,) = lines
    assert line.status == "failed" and line.attempts == 1


async def test_a_hard_stop_cuts_a_record_read_short() -> None:
    api = RecordedAPI({("j1", 1): "lost-after"})
    lines: list[ReportLine] = []
    runner = runner_for(api, lines)

    async def never_answers(job_id: str, **_: Any) -> Reply:
        api.shows += 1
        runner.hard_stop()  # as a second Ctrl-C would, while the read hangs
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    api.show_job = never_answers  # type: ignore[method-assign]
    with anyio.fail_after(10):
        await runner.run([entry("j1")])
    (line,) = lines
    assert api.shows == 1
    assert line.status == "failed" and line.ambiguous  # it may have executed: nobody knows


async def test_a_refusal_after_a_server_error_that_ran_the_command_is_a_success() -> None:
    """The service ran the command and then answered 500; the retry is refused because
    the job has moved on. The record says it took effect: the line says succeeded."""
    api = RecordedAPI({("j1", 1): "error-after"})
    got, _ = await run([entry("j1")], api)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "succeeded" and line.confirmed_by == "operation_log"
    assert line.attempts == 1 and api.shows == 1  # read before any second attempt


async def test_a_refusal_after_a_server_error_that_did_nothing_stays_a_failure() -> None:
    api = RecordedAPI({("j1", 1): "error-before", ("j1", 2): "refuse", ("j2", 1): "refuse"})
    got, _ = await run([entry("j1"), entry("j2")], api)
    assert got[("j1", "SUBMITVERIFYING")].status == "failed"
    assert not got[("j1", "SUBMITVERIFYING")].ambiguous
    assert got[("j2", "SUBMITVERIFYING")].status == "failed"
    assert api.shows == 2  # j1 before the retry and after its refusal; a plain refusal none


async def test_a_limit_that_leaves_only_entries_already_done_leaves_nothing() -> None:
    api = RecordedAPI({})
    done = {key_digest("j2", "SUBMITVERIFYING"), key_digest("j3", "SUBMITVERIFYING")}
    lines: list[ReportLine] = []
    runner = Runner(
        client=api,
        limiter=RateLimiter(rate=0),
        write=lambda line: lines.append(ReportLine.model_validate(line)),
        run_id="r",
        options=RunOptions(handle_signals=False, limit=2, concurrency=1),
        done_keys=done,
        rng=random.Random(3),
    )
    await runner.run([entry(f"j{i}") for i in range(4)])
    assert {line.job_id for line in lines} == {"j0", "j1"}
    assert not runner.stats.left_by_limit  # j2 and j3 were done already: --resume has none
    assert runner.stats.already_done == 2


async def test_after_a_server_error_then_a_lost_answer_the_record_is_read_from_the_error() -> None:
    """Attempt 1 ran and answered 500; attempt 2's answer was lost; attempt 3 is refused.
    The record must be read from attempt 1, the first that may have run unheard."""
    api = RecordedAPI({("j1", 1): "error-after", ("j1", 2): "lost-before"})
    lines: list[ReportLine] = []
    runner = runner_for(api, lines, backoff_base=0.001, backoff_cap=0.01)
    measure(runner, api)
    sent: list[datetime] = []
    looked_from: list[datetime] = []
    execute, check = api.execute, runner.confirmer.check

    async def timed(e: Entry) -> Outcome:
        sent.append(datetime.now(UTC))
        return await execute(e)

    async def spied(e: Entry, *, since: datetime) -> Any:
        looked_from.append(since)
        return await check(e, since=since)

    api.execute = timed  # type: ignore[method-assign]
    runner.confirmer.check = spied  # type: ignore[method-assign]
    await runner.run([entry("j1")])
    (line,) = lines
    assert looked_from and all(since <= sent[0] for since in looked_from)
    assert line.status == "succeeded" and line.confirmed_by == "operation_log"


async def test_a_refusal_after_a_server_error_is_in_doubt_when_the_record_cannot_tell() -> None:
    api = RecordedAPI({("j1", 1): "error-after"}, show="forbidden")
    got, _ = await run([entry("j1")], api)
    line = got[("j1", "SUBMITVERIFYING")]
    assert api.executions[("j1", "SUBMITVERIFYING")] == 1
    assert line.status == "failed" and line.ambiguous
    assert "server error" in (line.reason or "") and "may have executed" in (line.reason or "")


async def test_no_permission_for_show_does_not_halt_the_run() -> None:
    """A 403 on Show says these credentials may not read jobs, not that they cannot run
    commands: the record cannot tell, and the run goes on."""
    api = RecordedAPI({("j1", 1): "lost-before"}, show="refused")
    got, runner = await run([entry("j1"), entry("j2")], api)
    assert runner.stats.halted_reason is None
    assert got[("j1", "SUBMITVERIFYING")].ambiguous  # in doubt, not sent again on a guess
    assert got[("j2", "SUBMITVERIFYING")].status == "succeeded"


async def test_a_record_that_cannot_be_read_now_is_not_a_reason_to_send_again() -> None:
    """Show answers 500 whatever is tried: sending again on a guess could run the command
    twice. The entry stops in doubt, for --resume to read the record again."""
    api = RecordedAPI({("j1", 1): "lost-after"}, show="down")
    got, _ = await run([entry("j1", "DELETE_JOB_VIDEO")], api, max_attempts=5)
    line = got[("j1", "DELETE_JOB_VIDEO")]
    assert api.executions[("j1", "DELETE_JOB_VIDEO")] == 1 and line.attempts == 1
    assert line.status == "failed" and line.ambiguous
    assert "could not be read" in (line.reason or "")


async def test_resume_does_not_send_an_entry_in_doubt_whose_record_cannot_be_read() -> None:
    api = RecordedAPI({}, show="down")
    doubts = {key_digest("j1", "SUBMITVERIFYING"): datetime.now(UTC) - timedelta(seconds=30)}
    got, _ = await run([entry("j1"), entry("j2")], api, doubts=doubts)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "skipped" and line.ambiguous and line.attempts == 0
    assert "could not be read" in (line.reason or "")
    assert ("j1", "SUBMITVERIFYING") not in api.attempts
    assert got[("j2", "SUBMITVERIFYING")].status == "succeeded"


async def test_a_request_still_queued_on_the_server_is_given_time_before_a_resend() -> None:
    """The answer timed out while the request waited on the server; it runs a moment later.
    The record says "did not" at first: batcher waits as long as --timeout and looks again
    before sending it a second time."""
    api = RecordedAPI({("j1", 1): "lost-late"})
    got, _ = await run([entry("j1")], api, settle=0.5)
    line = got[("j1", "SUBMITVERIFYING")]
    assert api.executions[("j1", "SUBMITVERIFYING")] == 1
    assert line.status == "succeeded" and line.confirmed_by == "operation_log"
    assert api.shows == 2


async def test_a_log_written_late_after_a_server_error_is_waited_for() -> None:
    """The command ran and a 500 came back; its log entry shows a moment later (the reference
    does not say the log is written at once). DELETE_JOB_VIDEO is accepted again: a resend on
    the first look's "no entry" would delete twice."""
    api = RecordedAPI({("j1", 1): "error-after"})
    api.log_lag = 0.2
    got, _ = await run([entry("j1", "DELETE_JOB_VIDEO")], api, settle=0.4)
    line = got[("j1", "DELETE_JOB_VIDEO")]
    assert api.executions[("j1", "DELETE_JOB_VIDEO")] == 1
    assert line.status == "succeeded" and line.confirmed_by == "operation_log"
    assert line.attempts == 1


async def test_a_job_moved_on_while_its_log_is_silent_is_not_sent_again() -> None:
    """SUBMITVERIFYING ran (the job left WAIT_FILE_UPLOAD) but the log shows nothing yet, past
    the settle period: the record cannot say it did not run, so it is not sent again."""
    api = RecordedAPI({("j1", 1): "error-after"})
    api.moves, api.log_lag = {"SUBMITVERIFYING": "AUTO_VERIFYING"}, 3600.0
    got, _ = await run([entry("j1")], api)
    line = got[("j1", "SUBMITVERIFYING")]
    assert api.attempts[("j1", "SUBMITVERIFYING")] == 1
    assert line.status == "failed" and line.ambiguous and not line.retryable
    assert "AUTO_VERIFYING" in (line.reason or "")


async def test_a_refusal_behind_a_late_log_is_checked_after_the_settle_period() -> None:
    """The log shows the first attempt only after a wait longer than --timeout: the resend is
    refused ("only once"), and that refusal may be the first attempt's doing. The record
    read once more after the settle period shows it ran."""
    api = RecordedAPI({("j1", 1): "error-after"})
    api.log_lag = 0.3
    got, _ = await run([entry("j1", "CONFIRM_REPAIR")], api, settle=0.2)
    line = got[("j1", "CONFIRM_REPAIR")]
    assert api.executions[("j1", "CONFIRM_REPAIR")] == 1
    assert line.status == "succeeded" and line.confirmed_by == "operation_log"
    assert line.attempts == 2


# --------------------------------------------------------------------------- clocks


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


LOG_SKEWS = [-300, -130, -30, -6, 0, 6, 30, 130, 300]


@pytest.mark.parametrize("log_skew", LOG_SKEWS)
@pytest.mark.parametrize("what", ["error-after", "lost-after", "error-before", "lost-before"])
async def test_the_log_clock_apart_from_the_date_header_never_makes_a_line_false(
    log_skew: int, what: str
) -> None:
    """The gateway's Date agrees with our clock, the service's log clock is up to 5 minutes
    off either way, and nothing has measured it yet: a line may be in doubt, never false,
    and DELETE_JOB_VIDEO (accepted again) never runs twice."""
    api = RecordedAPI({("j1", 1): what})
    api.date_skew = timedelta(0)
    api.clock_skew = timedelta(seconds=log_skew)
    got, _ = await run([entry("j1", "DELETE_JOB_VIDEO")], api, measured=False)
    line = got[("j1", "DELETE_JOB_VIDEO")]
    runs = api.executions.get(("j1", "DELETE_JOB_VIDEO"), 0)
    assert runs == 1  # it ran, once: either the first attempt or, surely not run, the second
    if line.status == "failed":
        assert line.ambiguous and not line.retryable and what.endswith("-after")


@pytest.mark.parametrize("gap", LOG_SKEWS)
@pytest.mark.parametrize("date_skew", [-300, 0, 300])
async def test_a_command_seen_to_succeed_measures_the_log_clock(gap: int, date_skew: int) -> None:
    """j0 succeeds with its answer; j1's answer is a 500 after it ran. Reading j0's record
    bounds the log's clock from above (its entry was written after j0 was sent), j1's
    record from below: j1 is confirmed, whatever the clocks (the Date header ours ±5 min,
    the log that ±5 min), and runs once."""
    api = RecordedAPI({("j1", 1): "error-after"})
    api.date_skew = timedelta(seconds=date_skew)
    api.clock_skew = timedelta(seconds=date_skew + gap)
    api.first["j0"] = "DELETE_JOB_VIDEO"
    entries = [entry("j0", "DELETE_JOB_VIDEO"), entry("j1", "DELETE_JOB_VIDEO")]
    got, runner = await run(entries, api, measured=False, concurrency=1)
    line = got[("j1", "DELETE_JOB_VIDEO")]
    assert line.status == "succeeded" and line.confirmed_by == "operation_log"
    assert api.executions[("j1", "DELETE_JOB_VIDEO")] == 1 and line.attempts == 1
    assert api.shows == 2  # j1's record, and j0's once to measure the clock
    assert runner.confirmer.clocks.offset().high is not None


@pytest.mark.parametrize("measured", [True, False])
async def test_an_earlier_action_minutes_before_is_not_taken_for_the_attempt(
    measured: bool,
) -> None:
    """The job was submitted a minute before batcher's attempt (by whoever prepared it);
    batcher's attempt gets a 500 and did nothing. Measured, the entry is surely earlier: the
    record says "did not", the retry is refused, and the line is a plain failure. Not
    measured, it cannot tell: in doubt. Never "succeeded"."""
    api = RecordedAPI({("j1", 1): "error-before"})
    job = api.job("j1")
    job.logs.append(
        {
            "log_type": "USER_VERIFYING_SUBMITTED",
            "operate_time": stamp(datetime.now(UTC) - timedelta(minutes=1)),
            "operate_user": "USER",
        }
    )
    job.done.add("SUBMITVERIFYING")
    got, _ = await run([entry("j1")], api, measured=measured)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "failed" and line.confirmed_by is None
    assert line.ambiguous is not measured and line.attempts == (2 if measured else 1)


@pytest.mark.parametrize("command", ["CONFIRM_REJECT", "CONFIRM_ANSWER"])
async def test_a_users_comment_confirms_a_verdict_whose_answer_was_lost(command: str) -> None:
    api = RecordedAPI({("j1", 1): "lost-after"})
    got, _ = await run([entry("j1", command)], api)
    line = got[("j1", command)]
    assert line.status == "succeeded" and line.confirmed_by == "comment_logs"
    assert api.executions[("j1", command)] == 1


async def test_no_comment_does_not_say_a_verdict_did_not_run() -> None:
    """A CONFIRM_ANSWER need not leave a comment (undocumented): no comment is no proof."""
    api = RecordedAPI({("j1", 1): "lost-before"})
    got, _ = await run([entry("j1", "CONFIRM_ANSWER")], api)
    line = got[("j1", "CONFIRM_ANSWER")]
    assert line.status == "failed" and line.ambiguous and line.attempts == 1


@pytest.mark.parametrize("j2", ["slow", "slow-refuse"])
async def test_a_doubt_before_anything_measured_the_clock_waits_for_a_command_in_flight(
    j2: str,
) -> None:
    """j1's 500 comes before any command was seen to succeed: its record cannot be judged
    yet. j2 is still on its way: j1 waits for it, and j2's success measures the clock. If
    j2 does not succeed either, j1 stays in doubt (and is not sent again)."""
    api = RecordedAPI({("j1", 1): "error-after", ("j2", 1): j2})
    got, _ = await run([entry("j2"), entry("j1")], api, measured=False, concurrency=2)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.attempts == 1 and api.executions[("j1", "SUBMITVERIFYING")] == 1
    if j2 == "slow":
        assert line.status == "succeeded" and line.confirmed_by == "operation_log"
    else:
        assert line.status == "failed" and line.ambiguous


@pytest.mark.parametrize("effect", [True, False])
async def test_resume_judges_entries_in_doubt_once_the_run_has_measured_the_clock(
    effect: bool,
) -> None:
    api = RecordedAPI({})
    api.clock_skew = api.date_skew = timedelta(seconds=-200)
    if effect:
        api._take_effect(entry("j1"))
        api.attempts.clear()
    doubts = {key_digest("j1", "SUBMITVERIFYING"): datetime.now(UTC) - timedelta(seconds=2)}
    entries = [entry("j1"), entry("j1", "CONFIRM_REPAIR"), entry("j2"), entry("j3")]
    got, _ = await run(entries, api, doubts=doubts, measured=False, concurrency=1)
    line = got[("j1", "SUBMITVERIFYING")]
    assert line.status == "succeeded" and api.executions[("j1", "SUBMITVERIFYING")] == 1
    assert (line.attempts, line.confirmed_by) == ((0, "operation_log") if effect else (1, None))
    assert got[("j1", "CONFIRM_REPAIR")].status == "succeeded"  # its chain waited with it
