"""Where to send: a region's public endpoint, or ``--endpoint`` checked for safety."""

from __future__ import annotations

import ipaddress

from yarl import URL

from ..errors import UsageError

REGIONS = ("cn-north-4", "cn-east-3")


def endpoint_for(*, region: str | None, endpoint: str | None) -> URL:
    """The base URL to call: ``--endpoint`` if given, else the region's public endpoint.

    Plain ``http://`` is accepted only for loopback hosts: anything else would send
    credentials and signed requests in clear text.

    >>> str(endpoint_for(region="cn-north-4", endpoint=None))
    'https://metastudio.cn-north-4.myhuaweicloud.com'
    """
    if endpoint:
        try:
            url = URL(endpoint)
            port = url.port  # yarl checks the port's range lazily
        except ValueError as error:
            raise UsageError(f"--endpoint {endpoint!r} is not a valid URL: {error}") from None
        if url.scheme not in ("http", "https") or not url.host or port is None:
            raise UsageError(f"--endpoint {endpoint!r} is not an http(s) URL")
        if url.user is not None or url.password is not None:
            raise UsageError(
                "--endpoint must not carry a user name or password (credentials come from "
                "the environment only)"
            )
        if url.scheme == "http" and not is_loopback(url.host):
            raise UsageError(
                f"--endpoint {endpoint!r}: plain http is allowed only for loopback hosts "
                "(127.0.0.1, ::1, localhost); use https"
            )
        if url.path not in ("", "/") or url.query_string:
            raise UsageError(f"--endpoint {endpoint!r} must be a base URL without a path")
        return url.with_path("")
    if not region:
        raise UsageError("no region: pass --region or set HUAWEICLOUD_SDK_REGION (or --endpoint)")
    if region not in REGIONS:
        raise UsageError(f"unknown region {region!r}: MetaStudio is in {', '.join(REGIONS)}")
    return URL(f"https://metastudio.{region}.myhuaweicloud.com")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
