"""Authentication: AK/SK request signing (SDK-HMAC-SHA256) and IAM token auth.

The client hands each request's headers to a signer (:func:`signer_for`), which adds
``X-Sdk-Date``/``Authorization`` (or ``X-Auth-Token``): no secret passes through the
client's code. A signer is also an aiohttp client middleware, for sessions of tests and
tools. The signing functions are also used by the simulator to *verify* requests.

The scheme is the one ``huaweicloudsdkcore.signer.Signer`` implements::

    canonical request = METHOD \\n canonical-URI/ \\n canonical-query \\n
                        lower(name):value\\n ... \\n signed;headers \\n hex(sha256(body))
    string to sign    = "SDK-HMAC-SHA256" \\n X-Sdk-Date \\n hex(sha256(canonical request))
    signature         = hex(hmac_sha256(SK, string to sign))

>>> sign_string("sk", "SDK-HMAC-SHA256\\n20261124T000000Z\\nabc")[:16]
'ffd978313eec1fd3'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, unquote

from aiohttp import ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType

from batcher.send.credentials import AkSkCredentials, Credentials, TokenCredentials

ALGORITHM: Final = "SDK-HMAC-SHA256"
DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256: Final = hashlib.sha256(b"").hexdigest()

#: Headers we sign when present. The official SDK signs every header it sets; the gateway
#: checks exactly the list named in ``SignedHeaders``, so a fixed list is equally valid and
#: keeps proxies that rewrite ``User-Agent``/``Accept-Encoding`` from breaking signatures.
_SIGNABLE: Final = (
    "content-type",
    "host",
    "x-app-userid",
    "x-project-id",
    "x-sdk-date",
    "x-security-token",
)
_SIGNABLE_SET: Final = frozenset(_SIGNABLE)


# --------------------------------------------------------------------------- the scheme


def _url_encode(value: str) -> str:
    return quote(value, safe="~")


#: Paths made only of unreserved characters and slashes are their own canonical form
#: (``quote`` leaves them alone and ``unquote`` has nothing to undo): the usual case, since
#: job and project ids are ``[A-Za-z0-9_-]``.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/_.~-]*").fullmatch


def canonical_uri(path: str) -> str:
    """Each segment percent-encoded, with the trailing slash the scheme requires."""
    if _PLAIN_PATH(path):
        return path if path.endswith("/") else path + "/"
    encoded = "/".join(_url_encode(part) for part in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    return "&".join(
        f"{_url_encode(k)}={_url_encode(v)}" for k, v in sorted(pairs, key=lambda kv: kv)
    )


def canonical_request(
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: list[str],
    body: bytes,
) -> str:
    """The canonical request string. ``headers`` must be case-insensitive (or lower-case)."""
    lines = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            lines,
            ";".join(signed_headers),
            payload_hash,
        )
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def sign_string(sk: str, to_sign: str) -> str:
    return hmac.digest(sk.encode(), to_sign.encode(), "sha256").hex()


def authorization_header(
    *,
    ak: str,
    sk: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """Sign a request whose ``headers`` already hold ``Host`` and ``X-Sdk-Date``."""
    lower = {name.lower(): value for name, value in headers.items()}
    prefix = f"{ALGORITHM} Access={ak}, SignedHeaders="
    return _authorization(prefix, sk.encode(), method, path, query, lower, body)


def _authorization(
    prefix: str,
    key: bytes,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    lower: Mapping[str, str],
    body: bytes,
) -> str:
    """The ``Authorization`` header over ``lower`` (the headers, by lower-case name)."""
    signed = sorted(name for name in lower if name in _SIGNABLE_SET)
    canonical = canonical_request(
        method=method, path=path, query=query, headers=lower, signed_headers=signed, body=body
    )
    signature = hmac.digest(key, string_to_sign(canonical, lower["x-sdk-date"]).encode(), "sha256")
    return f"{prefix}{';'.join(signed)}, Signature={signature.hex()}"


_AUTH_RE = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=(?P<ak>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-fA-F]+)\s*$"
)


def verify_request(
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime | None = None,
    max_skew_seconds: float = 15 * 60,
) -> str | None:
    """Check an AK/SK-signed request; return why it is refused, or None when it verifies.

    ``secret_for`` maps an AK to its SK (None for an unknown AK). Reasons never contain
    a secret or the expected signature.
    """
    authorization = headers.get("Authorization", "")
    match = _AUTH_RE.match(authorization)
    if not match:
        return "Authorization header is missing or not SDK-HMAC-SHA256"
    sdk_date = headers.get("X-Sdk-Date")
    if not sdk_date:
        return "X-Sdk-Date header is missing"
    try:
        signed_at = datetime.strptime(sdk_date, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return "X-Sdk-Date is not in the format YYYYMMDDTHHMMSSZ"
    skew = abs(((now or datetime.now(UTC)) - signed_at).total_seconds())
    if skew > max_skew_seconds:
        return (
            f"X-Sdk-Date is {skew:.0f}s away from the server's clock "
            f"(limit {max_skew_seconds / 60:g} minutes)"
        )
    sk = secret_for(match["ak"])
    if sk is None:
        return "the access key is not known"
    signed = match["signed"].split(";")
    if "x-sdk-date" not in signed:
        return "X-Sdk-Date is not among the signed headers"
    missing = [name for name in signed if name not in headers]
    if missing:
        return f"signed header {missing[0]!r} is missing from the request"
    canonical = canonical_request(
        method=method, path=path, query=query, headers=headers, signed_headers=signed, body=body
    )
    expected = sign_string(sk, string_to_sign(canonical, sdk_date))
    if not hmac.compare_digest(expected, match["sig"].lower()):
        return "the signature does not match (wrong SK, or the request was altered)"
    return None


# --------------------------------------------------------------------------- signers


def sdk_date(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime(DATE_FORMAT)


class AkSkSigner:
    """Signs requests with AK/SK: the client calls :meth:`sign` on each request's headers;
    as an aiohttp client middleware it signs every request of a session.

    The key, the ``Authorization`` prefix and the date (once a second) are computed once,
    not per request: a run signs tens of thousands.

    >>> signer = AkSkSigner(AkSkCredentials(ak="AK", sk="SK"))
    >>> headers = {"X-Project-Id": "p"}
    >>> signer.sign(headers, method="GET", host="h", path="/v1/p/jobs")
    >>> headers["Authorization"].split("Signature=")[0]
    'SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-project-id;x-sdk-date, '
    """

    __slots__ = ("_clock", "_credentials", "_date", "_key", "_prefix", "_second", "_token")

    def __init__(
        self, credentials: AkSkCredentials, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._credentials = credentials
        self._clock = clock
        self._second = -1
        self._date = ""
        self._key = credentials.sk.encode()
        self._prefix = f"{ALGORITHM} Access={credentials.ak}, SignedHeaders="
        self._token = credentials.security_token

    def __repr__(self) -> str:
        return f"AkSkSigner({self._credentials!r})"

    def _sdk_date(self) -> str:
        if self._clock is not None:
            return sdk_date(self._clock())
        second = int(time.time())
        if second != self._second:  # one strftime a second, not one a request
            self._second, self._date = second, time.strftime(DATE_FORMAT, time.gmtime(second))
        return self._date

    def sign(
        self,
        headers: MutableMapping[str, str],
        *,
        method: str,
        host: str | None,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        """Add ``Host`` (unless None: already there), ``X-Sdk-Date``, the security token
        and ``Authorization`` to ``headers``, the request's other headers."""
        if host is not None:
            headers["Host"] = host
        headers["X-Sdk-Date"] = self._sdk_date()
        if self._token:
            headers["X-Security-Token"] = self._token
        lower = {name.lower(): value for name, value in headers.items()}
        headers["Authorization"] = _authorization(
            self._prefix, self._key, method, path, query, lower, body
        )

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        body = request.body
        url = request.url
        self.sign(
            request.headers,
            method=request.method,
            host=None,
            path=url.raw_path,
            query=url.query.items() if url.raw_query_string else (),
            body=await body.as_bytes() if not isinstance(body, bytes) else body,
        )
        return await handler(request)


class TokenAuth:
    """Sends an IAM token as ``X-Auth-Token`` (:meth:`sign`, or as a middleware)."""

    __slots__ = ("_credentials",)

    def __init__(self, credentials: TokenCredentials) -> None:
        self._credentials = credentials

    def __repr__(self) -> str:
        return "TokenAuth(token=***)"

    def sign(self, headers: MutableMapping[str, str], **_: object) -> None:
        headers["X-Auth-Token"] = self._credentials.token

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        self.sign(request.headers)
        return await handler(request)


def signer_for(credentials: Credentials) -> AkSkSigner | TokenAuth:
    if isinstance(credentials, AkSkCredentials):
        return AkSkSigner(credentials)
    return TokenAuth(credentials)
