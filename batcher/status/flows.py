"""Which job states a wanted state can still follow, from the documented flows.

A waiter must not wait for what cannot come, nor give up on what can. The API documents
its flows (workflows-and-quotas.md): a failed review waits for the user's Update and
upload; JOB_SUCCESS is an ordinary tenant's final state and JOB_FINISH an NA tenant's;
WAIT_USER_CONFIRM, JOB_REJECT and JOB_PENDING wait for the NA user's confirmation
commands; WAIT_FILE_UPLOAD waits for the user's upload and commands. From those *resting*
states no other state follows unless someone acts, so a job resting in a state that is not
wanted is reported at once rather than waited for.

Assumption (the documentation is silent): a ``*_FAILED`` or ``MANUAL_STOP_*`` state of the
system's own steps (preprocessing, training, compiling, action generation, test video) is
left only when an administrator redoes the step (the REDO_* log types), so it rests too.
Every other state, and any state batcher does not know, is taken to move on by itself and
possibly to any wanted state: the conservative reading, since reporting "cannot reach"
would state as known what is not.

>>> cannot_follow("AUTO_VERIFY_FAILED", {"JOB_SUCCESS"}), cannot_follow("TRAINING", {"JOB_SUCCESS"})
(True, False)
"""

from __future__ import annotations

from collections.abc import Collection

from batcher.send.vocabulary import JOB_STATES

#: Documented: states a job leaves only when the user (or, for NA tenants, the user's
#: confirmation) acts; JOB_FINISH never.
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

#: Assumed (see the module's docstring): the system's failed or stopped steps.
STOPPED = frozenset(
    s for s in JOB_STATES if s.endswith("_FAILED") or s.startswith(("MANUAL_STOP_", "MANUL_STOP_"))
)

RESTING = WAITING_FOR_USER | STOPPED

#: Failed reviews: the states whose latest log entry says why (Show's operation_logs).
FAILED_REVIEW = frozenset({"AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED"})


def cannot_follow(state: str, wanted: Collection[str]) -> bool:
    """Whether a job in ``state`` cannot reach one of ``wanted`` without someone acting."""
    return state not in wanted and state in RESTING
