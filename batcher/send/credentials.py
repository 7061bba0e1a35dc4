"""Credentials: AK/SK (with a security token when temporary) or an IAM token — from the
environment, then the SDK's credentials file (``~/.huaweicloud/credentials``, INI section
``[basic]``; refused when others can read it, as ssh refuses a key), never from a flag — and
every secret either holds, for the log scrubber.
"""

from __future__ import annotations

import configparser
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from batcher.errors import UsageError


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


def _header_safe(text: str, where: str) -> str:
    if not _HEADER_SAFE.match(text):
        # Name where it came from, never the value: it is a secret.
        raise UsageError(
            f"{where} holds a character that cannot go in an HTTP header (a control "
            "character or non-ASCII text); check its value"
        )
    return text


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
                return _header_safe(text, f"environment variable {name}")
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
    """Every secret the environment (and the SDK's credentials file) holds, valid or not,
    for the log scrubber.

    >>> secrets_in_environment({"HUAWEICLOUD_SDK_SK": " sk-value ", "PATH": "/bin"})
    ('sk-value',)
    """
    env = os.environ if environ is None else environ
    found = [(env.get(name) or "").strip() for name in SECRET_VARIABLES]
    from_file = read_credentials_file(env, quiet=True)
    if from_file is not None:
        found += from_file.secrets()
    return tuple(value for value in found if value)


#: Where the official SDK looks for its credentials file, and the variable that moves it.
CREDENTIALS_FILE_VARIABLE: Final = "HUAWEICLOUD_SDK_CREDENTIALS_FILE"
_DEFAULT_CREDENTIALS_FILE = Path(".huaweicloud") / "credentials"


@dataclass(frozen=True, slots=True)
class CredentialsFile:
    """What the ``[basic]`` section of the SDK's credentials file holds."""

    path: Path
    ak: str | None = None
    sk: str | None = field(default=None, repr=False)
    project_id: str | None = None
    security_token: str | None = field(default=None, repr=False)

    def credentials(self) -> AkSkCredentials | None:
        if self.ak and self.sk:
            return AkSkCredentials(ak=self.ak, sk=self.sk, security_token=self.security_token)
        return None

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.sk, self.security_token) if s)

    def half(self) -> str | None:
        """What is wrong when the file holds one of ak and sk without the other."""
        if bool(self.ak) == bool(self.sk):
            return None
        has, lacks = ("ak", "sk") if self.ak else ("sk", "ak")
        return f"the credentials file {self.path} has {has} but no {lacks} in its [basic] section"


def credentials_file_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The file the SDK would read: ``$HUAWEICLOUD_SDK_CREDENTIALS_FILE``, or the default
    under the home directory (None when there is no home directory).

    >>> credentials_file_path({"HUAWEICLOUD_SDK_CREDENTIALS_FILE": "/etc/hc"})
    PosixPath('/etc/hc')
    """
    env = os.environ if environ is None else environ
    given = (env.get(CREDENTIALS_FILE_VARIABLE) or "").strip()
    if given:
        return Path(given).expanduser()
    home = env.get("HOME") or (os.path.expanduser("~") if environ is None else "")
    return Path(home) / _DEFAULT_CREDENTIALS_FILE if home and home != "~" else None


#: A credentials file holds a few short lines; anything far bigger is not one.
_MAX_CREDENTIALS_BYTES = 64 * 1024


def read_credentials_file(
    environ: Mapping[str, str] | None = None, *, quiet: bool = False
) -> CredentialsFile | None:
    """The credentials file's ``[basic]`` section, or None when there is no file.

    Raises :class:`~batcher.errors.UsageError` (naming the file, never a value) when the
    file is readable by others, cannot be read, or is not INI — unless ``quiet`` (the log
    scrubber only wants its secrets, whatever else is wrong).
    """
    env = os.environ if environ is None else environ
    path = credentials_file_path(env)
    explicit = bool((env.get(CREDENTIALS_FILE_VARIABLE) or "").strip())
    try:
        if path is None or not _usable(path, explicit=explicit, strict=not quiet):
            return None
        return _read_basic(path, strict=not quiet)
    except UsageError:
        if quiet:
            return None
        raise


def _usable(path: Path, *, explicit: bool, strict: bool) -> bool:
    """Whether ``path`` is a small regular file (readable by its owner only, if
    ``strict``); False when it does not exist and was not named."""
    try:
        status = path.stat()
    except FileNotFoundError:
        if not explicit:
            return False
        missing = f"{CREDENTIALS_FILE_VARIABLE} names {path}, which does not exist"
        raise UsageError(missing) from None
    except OSError as error:
        raise UsageError(f"cannot read the credentials file {path}: {error.strerror}") from None
    if not stat.S_ISREG(status.st_mode) or status.st_size > _MAX_CREDENTIALS_BYTES:
        # /dev/zero would be read for ever, a FIFO without a writer would never answer.
        what = "is not a regular file" if not stat.S_ISREG(status.st_mode) else "is too big"
        raise UsageError(f"the credentials file {path} {what}; it must be a small INI file")
    if strict and status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            f"the credentials file {path} is readable by others (mode "
            f"{stat.S_IMODE(status.st_mode):04o}); it holds a secret key: run "
            f"`chmod 600 {path}` (batcher refuses it until then, as ssh does a private key)"
        )
    return True


def _read_basic(path: Path, *, strict: bool) -> CredentialsFile:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as stream:
            # Read only what the size allowed: a file swapped meanwhile cannot make it more.
            parser.read_string(stream.read(_MAX_CREDENTIALS_BYTES + 1), source=str(path))
    except (OSError, UnicodeDecodeError, configparser.Error) as error:
        why = getattr(error, "strerror", None) or type(error).__name__
        raise UsageError(f"cannot read the credentials file {path}: {why}") from None
    if not parser.has_section("basic"):
        return CredentialsFile(path)
    section = parser["basic"]

    def value(name: str) -> str | None:
        text = (section.get(name) or "").strip()
        if text and strict:
            _header_safe(text, f"the credentials file {path}: {name}")
        return text or None

    names = ("ak", "sk", "project_id", "security_token")
    return CredentialsFile(path, **{name: value(name) for name in names})
