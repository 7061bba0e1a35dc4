"""Redaction: the last line of defence between a secret and any output.

batcher never puts a secret in a message on purpose, but a server can echo one back (an
``error_msg`` quoting the token, a proxy page listing headers) and that text flows into
reasons, the report and the summary. Everything that leaves the process passes here.

A secret can reach an output in several spellings: as itself; JSON-escaped, when a server
echoed it inside a JSON string that was not decoded (``"`` → ``\\"``, ``\\`` → ``\\\\``,
non-ASCII → ``\\u00e9``); and each of those escaped once more when a report line or a JSON
log line is serialised. The redactor masks all of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MASK = "***"


def _escaped(text: str) -> set[str]:
    """``text`` as it appears inside a JSON string, in the spellings encoders produce."""
    ascii_form = json.dumps(text)[1:-1]
    return {
        text,
        ascii_form,
        ascii_form.upper() if "\\u" in ascii_form else ascii_form,
        json.dumps(text, ensure_ascii=False)[1:-1],
    }


def spellings(secret: str) -> set[str]:
    """Every spelling of ``secret`` to mask: raw, escaped once, and escaped twice.

    >>> sorted(spellings('a"b\\\\c'))
    ['a"b\\\\c', 'a\\\\"b\\\\\\\\c', 'a\\\\\\\\\\\\"b\\\\\\\\\\\\\\\\c']
    """
    once = _escaped(secret)
    return {twice for form in once for twice in _escaped(form)}


class Redactor:
    """Replaces known secrets in text (raw, and as they look inside JSON strings).

    >>> Redactor(["s3cr3t-token"]).text("token s3cr3t-token refused")
    'token *** refused'
    >>> Redactor(['s3"cr3t']).text('{"error_msg": "bad s3\\\\"cr3t"}')
    '{"error_msg": "bad ***"}'
    """

    __slots__ = ("_byte_needles", "_needles")

    def __init__(self, secrets: Iterable[str]) -> None:
        needles: set[str] = set()
        for secret in secrets:
            # Very short "secrets" would blank out ordinary words; real ones are long.
            if secret and len(secret) >= 6:
                needles |= spellings(secret)
        # Longest first, so a spelling that contains another is masked whole.
        self._needles = tuple(sorted(needles, key=len, reverse=True))
        self._byte_needles = tuple(needle.encode() for needle in self._needles)

    def __bool__(self) -> bool:
        return bool(self._needles)

    def text(self, value: str) -> str:
        for needle in self._needles:
            if needle in value:
                value = value.replace(needle, MASK)
        return value

    def bytes(self, value: bytes) -> bytes:
        """:meth:`text` for UTF-8 bytes (a serialised line), without decoding them."""
        for needle in self._byte_needles:
            if needle in value:
                value = value.replace(needle, MASK.encode())
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
