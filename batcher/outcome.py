"""What one attempt at an entry's command came to, as the client maps the API's answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

#: An entry's final status in the report.
Status = Literal["succeeded", "failed", "skipped"]
#: Every status, in the order reports and summaries list them.
STATUSES: tuple[Status, ...] = get_args(Status)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one HTTP attempt, mapped from the API's answer.

    ``retryable`` says a later attempt may succeed (429, 5xx, network errors);
    ``auth_refused`` says every further request would fail too (401/403), and ``fatal``
    that no retry can fix the setup (a TLS certificate that does not verify): both halt.
    ``ambiguous`` says the request may have reached the API but no answer was read (a
    timeout, a connection lost after sending, a 502/504 from the gateway, an answer cut
    short): the command may or may not have taken effect. It is sent again only after the
    job's record has been checked (see :mod:`batcher.engine.confirm`).

    >>> Outcome(succeeded=False, reason="HTTP 500", retryable=True).retryable
    True
    """

    succeeded: bool
    reason: str | None = None
    retryable: bool = False
    auth_refused: bool = False
    http_status: int | None = None
    error_code: str | None = None
    error_msg: str | None = None
    command_result: str | None = None
    failed_msg: str | None = None
    request_id: str | None = None
    retry_after: float | None = None
    attachment_upload_url: list[str] | None = None
    multipart_data: list[dict[str, Any]] | None = None
    throttled: bool = False
    fatal: bool = False
    ambiguous: bool = False
    #: The server may still be working on it: the answer timed out (ours, or a gateway's
    #: 504), so a record that shows nothing yet is given time before it is believed.
    still_running: bool = False
