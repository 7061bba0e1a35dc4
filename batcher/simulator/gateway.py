"""What the API gateway in front of MetaStudio does: authentication and the tenant quota.

Error codes follow the gateway's ``APIGW.03xx`` family, each message saying why:

====== ============ =============================================================
status error_code   when
====== ============ =============================================================
401    APIGW.0301   AK/SK signature refused (unknown AK, wrong SK, stale X-Sdk-Date,
                    malformed Authorization, missing/wrong X-Security-Token)
401    APIGW.0303   X-Auth-Token refused
401    APIGW.0305   no authentication at all
403    APIGW.0306   X-Project-Id names another project than the URL path
429    APIGW.0308   throttled (quota spent, or a simulated throttle)
====== ============ =============================================================

Messages never contain a header value or a secret.
"""

from __future__ import annotations

import hmac
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from batcher.send.signing import verify_request
from batcher.simulator.config import SimulatorConfig


@dataclass(frozen=True, slots=True)
class Refusal:
    """An error answer: HTTP status, the API's error body, and extra headers."""

    status: int
    error_code: str
    error_msg: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, str]:
        return {"error_code": self.error_code, "error_msg": self.error_msg}


def _iam(why: str) -> Refusal:
    return Refusal(401, "APIGW.0301", f"Incorrect IAM authentication information: {why}")


def _matches(value: str | None, accepted: Iterable[str]) -> bool:
    # compare_digest against each, so timing says nothing about which one nearly matched
    found = False
    for candidate in accepted:
        found |= value is not None and hmac.compare_digest(value.encode(), candidate.encode())
    return found


def authenticate(config: SimulatorConfig, request: web.Request, body: bytes) -> Refusal | None:
    """Check a request's credentials the way the gateway would; None when accepted.

    >>> from aiohttp.test_utils import make_mocked_request
    >>> authenticate(SimulatorConfig(), make_mocked_request("POST", "/"), b"").error_code
    'APIGW.0305'
    """
    headers = request.headers
    if "Authorization" in headers:
        return _check_signature(config, request, body)
    if "X-Auth-Token" in headers:
        return _check_token(config, headers.get("X-Auth-Token", ""))
    return Refusal(
        401,
        "APIGW.0305",
        "Incorrect authentication information: the request carries neither an AK/SK "
        "signature (Authorization, X-Sdk-Date) nor an X-Auth-Token",
    )


def _check_signature(config: SimulatorConfig, request: web.Request, body: bytes) -> Refusal | None:
    asked: list[str] = []

    def secret_for(ak: str) -> str | None:
        # verify_request asks for the SK only once syntax and date are fine: in open
        # mode, being asked at all means the request is well formed.
        asked.append(ak)
        return config.credentials.get(ak)

    headers = request.headers
    why = verify_request(
        method=request.method,
        path=request.rel_url.raw_path,  # as signed: percent-encoded
        query=request.rel_url.query.items(),
        headers=headers,
        body=body,
        secret_for=secret_for,
        max_skew_seconds=config.max_skew_seconds,
    )
    if why is not None and not (config.open_auth and asked):
        return _iam(why)
    if config.security_token and not _matches(
        headers.get("X-Security-Token"), (config.security_token,)
    ):
        state = "is missing" if "X-Security-Token" not in headers else "does not match"
        return _iam(f"X-Security-Token {state} (the AK/SK are temporary credentials)")
    claimed = headers.get("X-Project-Id")
    if claimed is not None and claimed != request.match_info.get("project_id"):
        return Refusal(
            403,
            "APIGW.0306",
            "API access denied: X-Project-Id does not match the project_id in the URL path",
        )
    return None


def _check_token(config: SimulatorConfig, token: str) -> Refusal | None:
    if not token.strip():
        return Refusal(
            401, "APIGW.0303", "Incorrect token authentication information: X-Auth-Token is empty"
        )
    if config.open_auth or _matches(token.strip(), config.tokens):
        return None
    why = "the token is not valid" if config.tokens else "token authentication is not enabled"
    return Refusal(401, "APIGW.0303", f"Incorrect token authentication information: {why}")


def throttled(limit: int, retry_after: int) -> Refusal:
    """The gateway's 429, with ``Retry-After`` in whole seconds (at least 1)."""
    return Refusal(
        429,
        "APIGW.0308",
        "The throttling threshold has been reached: "
        f"policy user over ratelimit,limit:{limit},time:1 second",
        headers={"Retry-After": str(max(1, retry_after))},
    )


class Quota:
    """The tenant's quota: at most ``per_second`` admissions a second, counted per calendar
    second of a monotonic clock (``window="calendar"``) or over any sliding second
    (``window="sliding"``).

    ``changes`` is a schedule of ``(after_seconds, per_second)``: from that many seconds
    after the first request, only that many a second are left to this client. It models
    another client starting (or stopping) to share the quota, so the 429's message keeps
    stating the policy's limit, :attr:`limit` (the largest value in the schedule).

    >>> ticks = iter([10.2, 10.5, 10.9, 11.0])
    >>> quota = Quota(2, clock=lambda: next(ticks))
    >>> [quota.admit() for _ in range(4)]
    [None, None, 1, None]
    """

    __slots__ = ("_admitted", "_changes", "_clock", "_start", "limit", "per_second", "window")

    def __init__(
        self,
        per_second: int,
        *,
        window: Literal["calendar", "sliding"] = "calendar",
        changes: Sequence[tuple[float, int]] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second < 1 or any(at < 0 or n < 1 for at, n in changes):
            raise ValueError("a quota is at least 1 a second, changed at 0 s or later")
        if window not in ("calendar", "sliding"):
            raise ValueError(f"unknown quota window {window!r}")
        self.per_second = per_second  # what is left to this client at the start
        self.window = window
        self.limit = max([per_second, *(n for _, n in changes)])
        self._changes = sorted(changes)
        self._clock = clock
        self._start: float | None = None  # the first request: the schedule counts from it
        self._admitted: deque[float] = deque()  # admissions that may still count

    @classmethod
    def from_config(cls, config: SimulatorConfig) -> Quota | None:
        """The quota a simulator's config asks for (None: no quota).

        >>> Quota.from_config(SimulatorConfig(quota=20, quota_window="sliding")).window
        'sliding'
        """
        if config.quota is None:
            return None
        changes = [(c.after_seconds, c.per_second) for c in config.quota_changes]
        return cls(config.quota, window=config.quota_window, changes=changes)

    def available(self, elapsed: float) -> int:
        """Admissions a second left to this client ``elapsed`` seconds after the first request.

        >>> quota = Quota(30, changes=[(5.0, 12)])
        >>> quota.available(4.9), quota.available(5.0)
        (30, 12)
        """
        allowed = self.per_second
        for at, per_second in self._changes:
            if elapsed < at:
                break
            allowed = per_second
        return allowed

    def admit(self) -> int | None:
        """None when admitted; otherwise seconds until a request would be, rounded up."""
        now = self._clock()
        if self._start is None:
            self._start = now
        allowed = self.available(now - self._start)
        admitted, second, calendar = self._admitted, math.floor(now), self.window == "calendar"
        # Those that count now: admitted in this calendar second, or in the last second.
        while admitted and (
            math.floor(admitted[0]) < second if calendar else admitted[0] <= now - 1
        ):
            admitted.popleft()
        if len(admitted) < allowed:
            admitted.append(now)
            return None
        # Room comes when the second ends, or when the admission ``allowed`` places back leaves.
        frees = second + 1 if calendar else admitted[len(admitted) - allowed] + 1.0
        return max(1, math.ceil(frees - now))
