"""The API's answers mapped to :class:`~batcher.entry.Outcome` (pure functions): success,
refusal, retry, a halt (401/403), a redirect never followed, a body the API does not send,
and which may follow the command's execution (``ambiguous``: see :func:`proves_refusal`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
from yarl import URL

from batcher.entry import Outcome
from batcher.redact import Redactor

#: Answers that say "not now" rather than "no": a later attempt may succeed.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})
#: Refusals at the gate, by their status alone: the request was not let through (401/403
#: from the gateway's authentication, 429 APIGW.0308 over the quota, 408 not received whole).
GATE_REFUSALS = frozenset({401, 403, 408, 429})


def proves_refusal(status: int, error_code: str | None = None) -> bool:
    """Whether an answer says the command was not executed; ``error_code`` is its body's.

    Only the documented refusals prove it: 400 with the API's own error (``MSS.00000003``,
    invalid parameter), 401/403 from the gateway and 429 APIGW.0308. Assumption, the
    conservative reading where the documentation is silent: a 400 proves it with any of
    the service's ``MSS.`` codes, and nothing else does (a 404 or 409 with whatever body,
    500 MSS.00000004, 502, 503, 504, a 2xx that cannot be read) — it can come after the
    service ran the command.

    >>> proves_refusal(429), proves_refusal(400, "MSS.00000003"), proves_refusal(400)
    (True, True, False)
    >>> proves_refusal(404, "APIGW.0101"), proves_refusal(500, "MSS.00000004")
    (False, False)
    """
    return status in GATE_REFUSALS or (status == 400 and (error_code or "").startswith("MSS."))


def redirect_refused(status: int, location: str | None, request_id: str | None) -> Outcome:
    # The API never redirects; following one could hand the token or a signed request to
    # another host, over plain http even. Not retryable: it will redirect again.
    where = f" to {URL(location).with_query(None)}" if location else ""
    return Outcome(
        succeeded=False,
        http_status=status,
        request_id=request_id,
        reason=f"HTTP {status} redirect{where} not followed: batcher never follows redirects "
        "(they could carry credentials elsewhere); check --endpoint",
    )


def brief(error: BaseException) -> str:
    # Connection errors name host and port, never headers; keep them short anyway.
    text = str(error).strip()
    return f" ({text[:160]})" if text else ""


def outcome_from_response(
    status: int,
    raw: bytes,
    request_id: str | None,
    retry_after: str | None,
    content_type: str = "application/json",
    *,
    redactor: Redactor | None = None,
) -> Outcome:
    """Map an HTTP answer to an Outcome (pure, so every case is easy to test).

    >>> outcome_from_response(200, b'{"commond_result": "EXCUTE_SUCCESS"}', "r1", None).succeeded
    True
    """
    payload: Any = _json(raw) if raw else {}
    fields: dict[str, Any] = {"http_status": status, "request_id": request_id}
    if not isinstance(payload, dict):
        kind = content_type or "unknown content type"
        described = f"HTTP {status} with a body that is not JSON ({kind}): "
        described += _text_snippet(raw, redactor)
        refused = proves_refusal(status)
    elif status == 200:
        return _command_result(payload, fields)
    else:
        error_code = _str_or_none(payload.get("error_code"))
        error_msg = _str_or_none(payload.get("error_msg"))
        described = f"HTTP {status}" + (f" {error_code}" if error_code else "")
        described += f": {error_msg}" if error_msg else ""
        fields |= {"error_code": error_code, "error_msg": error_msg}
        if status in AUTH_STATUSES:
            reason = f"authentication refused ({described})"
            return Outcome(succeeded=False, auth_refused=True, reason=reason, **fields)
        refused = proves_refusal(status, error_code)
    if refused and status not in RETRYABLE_STATUSES and status not in AUTH_STATUSES:
        return Outcome(succeeded=False, reason=described, **fields)
    return Outcome(
        succeeded=False,
        retryable=status in RETRYABLE_STATUSES,
        auth_refused=status in AUTH_STATUSES,
        throttled=status == 429,
        ambiguous=not refused,
        still_running=status == 504,  # the gateway stopped waiting; the service may not
        retry_after=parse_retry_after(retry_after),
        reason=described,
        **fields,
    )


def _command_result(payload: dict[str, Any], common: dict[str, Any]) -> Outcome:
    """A 200 answer of the command interface: ``commond_result`` says what happened, and
    ``error_info`` {error_code, error_msg} (in the SDK's model) why it failed.

    >>> outcome = _command_result({"commond_result": "EXCUTE_FAILED", "error_info": {
    ...     "error_code": "MSS.00000023", "error_msg": "state not allowed"}}, {})
    >>> outcome.reason, outcome.error_code
    ('MSS.00000023: state not allowed', 'MSS.00000023')
    """
    result = _str_or_none(payload.get("commond_result"))
    info = payload.get("error_info")
    info = info if isinstance(info, dict) else {}
    # Assumption: a 200 naming its error outside error_info means the same.
    error_code = _str_or_none(info.get("error_code", payload.get("error_code")))
    error_msg = _str_or_none(info.get("error_msg", payload.get("error_msg")))
    failed_msg = _str_or_none(payload.get("excute_failed_msg"))
    fields: dict[str, Any] = {
        "command_result": result,
        "attachment_upload_url": _strings_or_none(payload.get("attachment_upload_url")),
        "multipart_data": _parts_or_none(payload.get("multipart_data")),
        "error_code": error_code,
        "error_msg": error_msg,
        "failed_msg": failed_msg,
        **common,
    }
    if result == "EXCUTE_SUCCESS":
        return Outcome(succeeded=True, **fields)
    said = ": ".join(part for part in (error_code, error_msg) if part)
    if result == "EXCUTE_FAILED":
        reason = failed_msg or said or "the API answered EXCUTE_FAILED without saying why"
        if failed_msg and said and said not in failed_msg:
            reason += f" ({said})"
        return Outcome(succeeded=False, reason=reason, **fields)
    # Not a result the API documents: whether the command ran is not known.
    reason = f"unexpected commond_result {result!r} in a 200 answer" + (
        f" ({said})" if said else ""
    )
    return Outcome(succeeded=False, ambiguous=True, reason=reason, **fields)


def reply_from_response(
    status: int,
    raw: bytes,
    request_id: str | None,
    retry_after: str | None,
    content_type: str = "application/json",
    *,
    redactor: Redactor | None = None,
) -> tuple[Outcome, dict[str, Any] | None]:
    """Map the answer to a read (List, Show): the outcome, and the JSON object on success.

    >>> outcome, data = reply_from_response(200, b'{"count": 0, "jobs": []}', "r1", None)
    >>> outcome.succeeded, data
    (True, {'count': 0, 'jobs': []})
    """
    if status == 200:
        payload = _json(raw)
        if isinstance(payload, dict):
            return Outcome(succeeded=True, http_status=200, request_id=request_id), payload
        snippet = _text_snippet(raw, redactor)
        reason = f"HTTP 200 with a body that is not a JSON object ({content_type}): {snippet}"
        return Outcome(
            succeeded=False,
            retryable=True,
            http_status=200,
            request_id=request_id,
            reason=reason,
        ), None
    outcome = outcome_from_response(
        status, raw, request_id, retry_after, content_type, redactor=redactor
    )
    # Reading changes nothing: an unknown outcome is just a failed read, worth another try;
    # but a 4xx in the API's shape (a job not found) will say the same again.
    if outcome.ambiguous:
        lasting = 400 <= status < 500 and bool(raw) and isinstance(_json(raw), dict)
        outcome = dataclasses.replace(outcome, ambiguous=False, retryable=not lasting)
    return outcome, None


def _json(raw: bytes) -> Any:
    """The JSON value in ``raw``, or None. orjson first (fast); the standard library for
    what orjson refuses but JSON allows (integers beyond 64 bits, NaN)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    >>> parse_retry_after("3")
    3.0
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "inf"/"nan" parse as floats but are not delta-seconds: ignore them.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


_TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")


def _text_snippet(raw: bytes, redactor: Redactor | None, limit: int = 120) -> str:
    if not raw:
        return "(empty)"
    title = _TITLE_RE.search(raw)
    text = (title.group(1) if title else raw).decode("utf-8", errors="replace")
    text = " ".join(_TAG_RE.sub(" ", text).split())
    if redactor is not None:  # before cutting, which could leave half a secret unmatched
        text = redactor.text(text)
    # Quoted as it is, not repr()'d: escaping would hide an echoed secret from the redactor.
    return '"' + text[:limit] + ("…" if len(text) > limit else "") + '"'


def _str_or_none(value: Any) -> str | None:
    return None if value is None else _text(value)


def _text(value: Any) -> str:
    """``value`` as text that UTF-8 can carry: a lone surrogate (half an emoji, cut by the
    server) becomes "?" instead of breaking every writer and log line it reaches."""
    text = str(value)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


# The answer's lists are kept only in the shapes the report promises, whatever was sent.
def _strings_or_none(value: Any) -> list[str] | None:
    return [_text(v) for v in value if v is not None] if isinstance(value, list) else None


def _parts_or_none(value: Any) -> list[dict[str, Any]] | None:
    """``multipart_data``, its ``part_number`` a string as the SDK has it, whatever came."""
    if not isinstance(value, list):
        return None
    parts = [dict(v) for v in value if isinstance(v, dict)]
    for part in parts:
        number = part.get("part_number")
        if number is not None and not isinstance(number, str):
            part["part_number"] = _text(number)
    return parts
