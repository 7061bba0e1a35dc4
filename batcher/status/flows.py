"""Which job states a wanted one can still follow, from the documented flows
(workflows-and-quotas.md): a waiter must not wait for what cannot come, nor give up on what can.

>>> cannot_follow("AUTO_VERIFY_FAILED", {"JOB_SUCCESS"}), cannot_follow("TRAINING", {"JOB_SUCCESS"})
(True, False)
"""

from __future__ import annotations

from collections.abc import Collection

from batcher.send.vocabulary import JOB_STATES

#: Documented: states a job leaves only when the user acts (a failed review: Update and a new
#: upload; WAIT_FILE_UPLOAD: the upload and its commands; an NA tenant's confirmation states:
#: the confirmation commands); JOB_SUCCESS (an ordinary tenant's end) and JOB_FINISH never.
WAITING_FOR_USER = frozenset(
    {
        "WAIT_FILE_UPLOAD",
        "AUTO_VERIFY_FAILED",
        "MANUAL_VERIFY_FAILED",
        "WAIT_USER_CONFIRM",
        "JOB_REJECT",
        "JOB_PENDING",
        "JOB_SUCCESS",
        "JOB_FINISH",
    }
)

#: Assumed (the documentation is silent): a failed or stopped step of the system's own is
#: left only when an administrator redoes it (the REDO_* log types), so it rests too. Every
#: other state, known or not, is taken to move on by itself, possibly to a wanted one: saying
#: "cannot reach" would state as known what is not.
STOPPED = frozenset(
    s for s in JOB_STATES if s.endswith("_FAILED") or s.startswith(("MANUAL_STOP_", "MANUL_STOP_"))
)

RESTING = WAITING_FOR_USER | STOPPED

#: Failed reviews: the states whose latest log entry says why (Show's operation_logs).
FAILED_REVIEW = frozenset({"AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED"})


def cannot_follow(state: str, wanted: Collection[str]) -> bool:
    """Whether a job in ``state`` cannot reach one of ``wanted`` without someone acting."""
    return state not in wanted and state in RESTING
