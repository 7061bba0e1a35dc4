"""Credentials: AK/SK (with a security token when temporary) or an IAM token, from the
environment only, never from a flag; and every secret the environment holds, for the
log scrubber."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from ..errors import UsageError


@dataclass(frozen=True, slots=True)
class AkSkCredentials:
    """Access key / secret key, and a security token for temporary credentials."""

    ak: str
    sk: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never the SK or token, and only a hint of the AK
        temporary = ", temporary" if self.security_token else ""
        return f"AkSkCredentials(ak={mask(self.ak)!r}{temporary})"

    def describe(self) -> str:
        kind = "temporary AK/SK" if self.security_token else "AK/SK"
        return f"{kind} signing (AK {mask(self.ak)})"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.sk, self.security_token) if s)


@dataclass(frozen=True, slots=True)
class TokenCredentials:
    """An IAM token sent as ``X-Auth-Token``."""

    token: str = field(repr=False)

    def __repr__(self) -> str:
        return "TokenCredentials(token=***)"

    def describe(self) -> str:
        return "IAM token (X-Auth-Token)"

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)


Credentials = AkSkCredentials | TokenCredentials


def mask(value: str) -> str:
    """Show just enough of an identifier to recognise it: ``'ABCD…'``."""
    return value[:4] + "…" if len(value) > 4 else "…"


_HEADER_SAFE = re.compile(r"^[\x20-\x7e]+$")


def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Read credentials from the environment (never from flags).

    AK/SK wins over a token when both are set; ``HUAWEICLOUD_SDK_*`` wins over the
    ``CLOUD_SDK_*`` names used in the cloud's own examples.

    >>> credentials_from_env({"METASTUDIO_AUTH_TOKEN": "t"})
    TokenCredentials(token=***)
    """
    env = os.environ if environ is None else environ

    def value(*names: str) -> str | None:
        # Strip before choosing: a blank (or whitespace-only) variable counts as unset,
        # so it neither shadows the fallback name nor yields an empty AK/SK.
        for name in names:
            text = (env.get(name) or "").strip()
            if text:
                if not _HEADER_SAFE.match(text):
                    # Name the variable, never the value: it is a secret.
                    raise UsageError(
                        f"environment variable {name} holds a character that cannot go in an "
                        "HTTP header (a control character or non-ASCII text); check its value"
                    )
                return text
        return None

    ak = value("HUAWEICLOUD_SDK_AK", "CLOUD_SDK_AK")
    sk = value("HUAWEICLOUD_SDK_SK", "CLOUD_SDK_SK")
    if ak and sk:
        return AkSkCredentials(ak=ak, sk=sk, security_token=value("HUAWEICLOUD_SDK_SECURITY_TOKEN"))
    token = value("METASTUDIO_AUTH_TOKEN")
    return TokenCredentials(token=token) if token else None


#: The environment variables that can hold a secret (never logged, whatever they hold).
SECRET_VARIABLES: Final = (
    "HUAWEICLOUD_SDK_SK",
    "CLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "METASTUDIO_AUTH_TOKEN",
)


def secrets_in_environment(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every secret the environment holds, valid or not, for the log scrubber.

    >>> secrets_in_environment({"HUAWEICLOUD_SDK_SK": " sk-value ", "PATH": "/bin"})
    ('sk-value',)
    """
    env = os.environ if environ is None else environ
    found = ((env.get(name) or "").strip() for name in SECRET_VARIABLES)
    return tuple(value for value in found if value)
