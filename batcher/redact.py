"""Redaction: the last line of defence between a secret and any output.

batcher never puts a secret in a message on purpose, but a server can echo one back (an
``error_msg`` quoting the token, a proxy page listing headers) and that text flows into
reasons, the report and the summary. Everything that leaves the process passes here.

A secret can reach an output in several spellings: as itself; JSON-escaped, when a server
echoed it inside a JSON string that was not decoded (``"`` → ``\\"``, ``\\`` → ``\\\\``,
non-ASCII → ``\\u00e9``); URL-encoded (either case of hex), as HTML text, or in base64 when
another layer echoed it; and each of those escaped once more when a report line or a JSON
log line is serialised. The redactor masks all of them.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"

_LOWER_HEX = re.compile(r"%[0-9A-F]{2}")


def _escaped(text: str) -> set[str]:
    """``text`` as it appears inside a JSON string, in the spellings encoders produce (PHP's
    json_encode also writes ``/`` as ``\\/``)."""
    ascii_form = json.dumps(text)[1:-1]
    forms = {
        text,
        ascii_form,
        ascii_form.upper() if "\\u" in ascii_form else ascii_form,
        json.dumps(text, ensure_ascii=False)[1:-1],
    }
    return forms | {form.replace("/", "\\/") for form in forms if "/" in form}


def _entities(text: str, pattern: str) -> str:
    return "".join(c if c.isalnum() else pattern.format(ord(c)) for c in text)


_GO_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;", "+": "&#43;"}


def _go_html(text: str) -> str:
    return "".join(_GO_ESCAPES.get(c, c) for c in text)


def _encoded(secret: str) -> set[str]:
    """``secret`` as other layers write it: URL-encoded (a proxy echoing a query or a
    form), as HTML text (an error page), and in base64 (a header echoed whole)."""
    try:
        secret.encode()
    except UnicodeEncodeError:
        # Bytes from the environment that are not UTF-8 (the settings refuse such a
        # secret; until they do, it is masked as it is and as JSON escapes it).
        return {secret}
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),  # Python's default keeps "/"
        quote(secret, safe="!~*'()"),  # JavaScript's encodeURIComponent
        quote(secret, safe="!~*'();,/?:@&=+$#"),  # JavaScript's encodeURI
        quote_plus(secret, safe=""),
        quote_plus(secret),
        quote(quote(secret, safe=""), safe=""),  # URL-encoded twice (a URL inside a URL)
        quote(quote(secret)),
        html.escape(secret),
        html.escape(secret, quote=False),
        _go_html(secret),  # Go's html/template: + as &#43;, quotes as &#34; and &#39;
        _entities(secret, "&#{};"),  # every sign as a numeric character reference
        _entities(secret, "&#x{:x};"),
        _entities(secret, "&#x{:X};"),
    }
    forms |= {_LOWER_HEX.sub(lambda m: m.group(0).lower(), form) for form in set(forms)}
    raw = secret.encode()
    for shift in range(3):  # base64 of the secret wherever it starts in the encoded bytes
        padded = b"\0" * shift + raw
        core = base64.b64encode(padded).decode()[4 if shift else 0 : len(padded) // 3 * 4]
        if len(core) >= 8:  # only the groups made of the secret's bytes alone
            forms |= {core, core.replace("+", "-").replace("/", "_")}
    return forms


def spellings(secret: str) -> set[str]:
    """Every spelling of ``secret`` to mask: raw, URL-encoded, as HTML, in base64, and each
    of those escaped once and twice in JSON strings.

    >>> forms = spellings('s3cr3t+"token/é')
    >>> {'s3cr3t+"token/é', 's3cr3t+\\"token/\\u00e9', 's3cr3t%2B%22token%2F%C3%A9',
    ...  's3cr3t%2b%22token%2f%c3%a9', 's3cr3t+&quot;token/é'} <= forms
    True
    """
    once = {escaped for form in _encoded(secret) for escaped in _escaped(form)}
    once |= _json_dialects(secret)
    return {twice for form in once for twice in _escaped(form)}


#: What other JSON encoders write as ``\\uXXXX`` (upper-case hex): .NET's System.Text.Json
#: by default, and Go's encoding/json (lower-case, for these three only).
_DOTNET_ESCAPED = frozenset("\"&'+<>`")
_GO_ESCAPED = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_LOWER_U = re.compile(r"\\u[0-9a-f]{4}")


def _json_dialects(secret: str) -> set[str]:
    """``secret`` as JSON encoders other than Python's escape it inside a string."""
    ascii_form = json.dumps(secret)[1:-1]
    dotnet = "".join(
        f"\\u{ord(c):04X}" if c in _DOTNET_ESCAPED or ord(c) > 126 else "\\\\" if c == "\\" else c
        for c in secret
    )
    go = "".join(_GO_ESCAPED.get(c, c) for c in json.dumps(secret, ensure_ascii=False)[1:-1])
    return {
        _LOWER_U.sub(lambda m: "\\u" + m.group(0)[2:].upper(), ascii_form),  # Java, .NET
        dotnet,
        go,
        "".join(c if c.isalnum() else f"\\u{ord(c):04x}" for c in secret),
        "".join(c if c.isalnum() else f"\\u{ord(c):04X}" for c in secret),
    }


class Redactor:
    """Replaces known secrets in text (raw, and as they look inside JSON strings).

    >>> Redactor(["s3cr3t-token"]).text("token s3cr3t-token refused")
    'token *** refused'
    >>> Redactor(['s3"cr3t']).text('{"error_msg": "bad s3\\\\"cr3t"}')
    '{"error_msg": "bad ***"}'
    """

    __slots__ = ("_byte_groups", "_groups", "_needles")

    def __init__(self, secrets: Iterable[str]) -> None:
        needles: set[str] = set()
        for secret in secrets:
            # Very short "secrets" would blank out ordinary words; real ones are long.
            if secret and len(secret) >= 6:
                needles |= spellings(secret)
        # Longest first, so a spelling that contains another is masked whole.
        self._needles = tuple(sorted(needles, key=len, reverse=True))
        # Most spellings of a secret begin alike: one search per distinct beginning tells
        # a clean text (nearly every one) from one to look at closely.
        self._groups = _by_beginning(self._needles)
        self._byte_groups = tuple(
            (_utf8(start), tuple(_utf8(needle) for needle in group))
            for start, group in self._groups
        )

    def __bool__(self) -> bool:
        return bool(self._needles)

    def text(self, value: str) -> str:
        found = [group for start, group in self._groups if start in value]
        if found:
            for needle in _longest_first(found):
                if needle in value:
                    value = value.replace(needle, MASK)
        return value

    def bytes(self, value: bytes) -> bytes:
        """:meth:`text` for UTF-8 bytes (a serialised line), without decoding them."""
        found = [group for start, group in self._byte_groups if start in value]
        if found:
            mask = MASK.encode()
            for needle in _longest_first(found):
                if needle in value:
                    value = value.replace(needle, mask)
        return value

    def deep(self, value: Any) -> Any:
        """Redact every string inside dicts, lists and tuples."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.deep(v) for v in value)
        return value


#: The length of the beginning that needles are grouped by (the shortest secret's).
_BEGINNING = 6


def _by_beginning(needles: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    groups: dict[str, list[str]] = {}
    for needle in needles:
        groups.setdefault(needle[:_BEGINNING], []).append(needle)
    return tuple((start, tuple(group)) for start, group in groups.items())


def _longest_first(groups: list[Any]) -> list[Any]:
    return sorted((needle for group in groups for needle in group), key=len, reverse=True)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
