"""MetaStudio, as batcher speaks to it: where to send, how to sign, one call, its answer.

* :mod:`.endpoint` — a region's endpoint, or a checked ``--endpoint``
* :mod:`.credentials` — AK/SK or a token, from the environment only
* :mod:`.auth` — AK/SK signing and IAM tokens, as aiohttp middlewares
* :mod:`.client` — the session, and the calls: a command, Show and List
* :mod:`.jobs`, :mod:`.record` — job states, and what a command leaves in the job's record
* :mod:`.answer` — the API's answers mapped to :class:`~batcher.outcome.Outcome`
"""

from .answer import outcome_from_response, parse_retry_after
from .client import MetaStudioClient, open_session
from .credentials import AkSkCredentials, Credentials, TokenCredentials, credentials_from_env
from .endpoint import REGIONS, endpoint_for, is_loopback

__all__ = [
    "REGIONS",
    "AkSkCredentials",
    "Credentials",
    "MetaStudioClient",
    "TokenCredentials",
    "credentials_from_env",
    "endpoint_for",
    "is_loopback",
    "open_session",
    "outcome_from_response",
    "parse_retry_after",
]
