"""Where to send: ``--endpoint`` checked for safety, or a region's endpoint.

A region's endpoint is the one ``HUAWEICLOUD_SDK_REGION_METASTUDIO_<REGION>`` names (the
SDK's convention: a region batcher does not know can be used), else its public one.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

from yarl import URL

from batcher.errors import UsageError

REGIONS = ("cn-north-4", "cn-east-3")


def region_variable(region: str) -> str:
    """The environment variable that names a region's endpoint, as the SDK spells it.

    >>> region_variable("cn-north-4")
    'HUAWEICLOUD_SDK_REGION_METASTUDIO_CN_NORTH_4'
    """
    return "HUAWEICLOUD_SDK_REGION_METASTUDIO_" + region.replace("-", "_").upper()


def endpoint_for(
    *, region: str | None, endpoint: str | None, environ: Mapping[str, str] | None = None
) -> URL:
    """The base URL to call: ``--endpoint`` if given, else the region's endpoint.

    Plain ``http://`` is accepted only for loopback hosts: anything else would send
    credentials and signed requests in clear text.

    >>> str(endpoint_for(region="cn-north-4", endpoint=None, environ={}))
    'https://metastudio.cn-north-4.myhuaweicloud.com'
    >>> env = {"HUAWEICLOUD_SDK_REGION_METASTUDIO_AP_SOUTHEAST_1": "https://ms.example.com"}
    >>> str(endpoint_for(region="ap-southeast-1", endpoint=None, environ=env))
    'https://ms.example.com'
    """
    env = os.environ if environ is None else environ
    if endpoint:
        return checked_url(endpoint, "--endpoint")
    if not region:
        raise UsageError("no region: pass --region or set HUAWEICLOUD_SDK_REGION (or --endpoint)")
    variable = region_variable(region)
    configured = (env.get(variable) or "").strip()
    if configured:
        # The SDK allows several endpoints separated by commas; the first is the one used.
        return checked_url(configured.split(",")[0].strip(), variable)
    if region not in REGIONS:
        raise UsageError(
            f"unknown region {region!r}: MetaStudio is in {', '.join(REGIONS)}; for another "
            f"region, set {variable}=https://... (its endpoint)"
        )
    return URL(f"https://metastudio.{region}.myhuaweicloud.com")


def checked_url(text: str, source: str) -> URL:
    """``text`` as a base URL, or a UsageError naming ``source`` (a flag or a variable)."""
    try:
        url = URL(text)
        port = url.port  # yarl checks the port's range lazily
    except ValueError as error:
        raise UsageError(f"{source} {text!r} is not a valid URL: {error}") from None
    if url.scheme not in ("http", "https") or not url.host or port is None:
        raise UsageError(f"{source} {text!r} is not an http(s) URL")
    if url.user is not None or url.password is not None:
        raise UsageError(
            f"{source} must not carry a user name or password (credentials come from "
            "the environment only)"
        )
    if url.scheme == "http" and not is_loopback(url.host):
        raise UsageError(
            f"{source} {text!r}: plain http is allowed only for loopback hosts "
            "(127.0.0.1, ::1, localhost); use https"
        )
    if url.path not in ("", "/") or url.query_string:
        raise UsageError(f"{source} {text!r} must be a base URL without a path")
    return url.with_path("")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
