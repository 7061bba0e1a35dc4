"""The adaptation's knobs, its decisions, and what a 429 says about the quota."""

from __future__ import annotations

import re
from dataclasses import dataclass

_STATED = re.compile(
    r"limit:\s*(\d+(?:\.\d+)?)\s*,\s*time:\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day)", re.I
)
_UNIT_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def stated_limit(error_msg: str | None) -> float | None:
    """The per-second limit a gateway's 429 message states, if it states one.

    >>> stated_limit("The throttling threshold has been reached: "
    ...              "policy user over ratelimit,limit:20,time:1 second")
    20.0
    >>> stated_limit("limit:600,time:1 minute"), stated_limit("Internal Error")
    (10.0, None)
    """
    if not error_msg or "limit:" not in error_msg:
        return None
    found = _STATED.search(error_msg)
    if found is None:
        return None
    count, span = float(found[1]), float(found[2]) * _UNIT_SECONDS[found[3].lower()]
    return count / span if count > 0 and span > 0 else None


@dataclass(frozen=True, slots=True)
class AdaptSettings:
    """The adaptation's knobs (see the module's notes for why these defaults)."""

    decrease_factor: float = 0.7
    #: Recovery per second when no estimate bounds it; None: ``recovery_fraction`` of the
    #: rate the last cut set.
    increase_per_second: float | None = None
    min_rate: float = 0.5
    window: int = 20
    min_window_seconds: float = 1.0
    throttle_threshold: float = 0.25
    recovery_fraction: float = 0.03
    drain_seconds: float = 0.5
    #: Cut straight to (just under) what got through, when that is lower than x0.7.
    proportional_cut: bool = True
    #: Cut on a run of 429s at once, without waiting for the sample to complete.
    fast_cut: bool = True
    #: Pace at this share of the quota estimate.
    margin: float = 0.975
    #: Hold this long at ``margin`` x the estimate before probing above it.
    probe_after: float = 10.0
    #: The first probe goes this far above the estimate; each one that passes doubles it.
    probe_step: float = 0.05


@dataclass(frozen=True, slots=True)
class Cut:
    """A decision to slow down: the new rate, and the evidence that called for it."""

    rate: float
    throttled_share: float
    passed_per_second: float
    #: Send nothing before this: the quota has no room until then.
    resume_at: float | None = None
