"""The API's documented quotas, per region and interface: a run's default paces.

MetaStudio counts each interface's calls per tenant on its own (单租户接口流控): the command
interface has one quota, List and Show another, so a run paces its commands and its reads
(Show after a lost answer, List pages) with two buckets. Source: the product's API-limits
page, gathered in the project's reference (``workflows-and-quotas.md``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from yarl import URL

#: Calls per second per tenant: (the command interface, List and Show).
DOCUMENTED: Mapping[str, tuple[float, float]] = {
    "cn-north-4": (10.0, 20.0),
    "cn-east-3": (3.0, 10.0),
    # The reference names this region only as 亚太-新加坡 (Singapore), whose region id is
    # ap-southeast-3; batcher has no public endpoint for it (set the SDK's endpoint variable).
    "ap-southeast-3": (3.0, 10.0),
}

#: Where batcher does not know the quota: the limiter starts here and finds the quota from
#: the 429s. An assumption: the documented command quotas are at most 10/s, and nothing
#: says an unknown endpoint's reads allow more than its commands.
UNKNOWN_RATE = 10.0

_PUBLIC_HOST = re.compile(r"metastudio\.([a-z0-9-]+)\.myhuaweicloud\.com", re.I)


@dataclass(frozen=True, slots=True)
class Pace:
    """A bucket's rate (0 = unlimited) and where it came from, for the plan and the log."""

    rate: float
    source: str


def region_of(region: str | None, endpoint: URL | None) -> str | None:
    """The region whose quotas apply: the one named, or the one a public endpoint is in.

    >>> region_of(None, URL("https://metastudio.cn-east-3.myhuaweicloud.com"))
    'cn-east-3'
    >>> region_of("cn-north-4", URL("http://127.0.0.1:8080")), region_of(None, None)
    ('cn-north-4', None)
    """
    if region:
        return region
    found = _PUBLIC_HOST.fullmatch(endpoint.host or "") if endpoint is not None else None
    return found[1].lower() if found else None


def paces(*, region: str | None, rate: float | None, read_rate: float | None) -> tuple[Pace, Pace]:
    """The command and read paces: a flag's value, else the region's documented quota, else
    :data:`UNKNOWN_RATE` (adapting).

    >>> paces(region="cn-east-3", rate=None, read_rate=None)
    (Pace(rate=3.0, source='documented quota for cn-east-3'), Pace(rate=10.0, source='documented quota for cn-east-3'))
    >>> paces(region=None, rate=8, read_rate=None)[0]
    Pace(rate=8, source='--rate')
    """  # noqa: E501 - a doctest's output is one line
    known = DOCUMENTED.get(region.lower()) if region else None
    if known is not None:
        default = f"documented quota for {region}"
    elif region:
        default = f"no documented quota for region {region}: default, adapting"
    else:
        default = "unknown endpoint: default, adapting"
    command, read = known or (UNKNOWN_RATE, UNKNOWN_RATE)
    return (
        Pace(rate, "--rate") if rate is not None else Pace(command, default),
        Pace(read_rate, "--read-rate") if read_rate is not None else Pace(read, default),
    )
