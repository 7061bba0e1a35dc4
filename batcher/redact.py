"""Redaction: the last line of defence between a secret and any output.

batcher never puts a secret in a message on purpose, but a server can echo one back (an
``error_msg`` quoting the token, a proxy page listing headers) and that text flows into
reasons, the report and the summary. Everything that leaves the process passes here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MASK = "***"


class Redactor:
    """Replaces known secrets in text (raw, and as they look inside a JSON string).

    >>> Redactor(["s3cr3t-token"]).text("token s3cr3t-token refused")
    'token *** refused'
    """

    __slots__ = ("_needles",)

    def __init__(self, secrets: Iterable[str]) -> None:
        needles: set[str] = set()
        for secret in secrets:
            # Very short "secrets" would blank out ordinary words; real ones are long.
            if secret and len(secret) >= 6:
                needles.add(secret)
                needles.add(json.dumps(secret)[1:-1])  # its escaped form inside JSON
                needles.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        # Longest first, so a secret that contains another is masked whole.
        self._needles = tuple(sorted(needles, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._needles)

    def text(self, value: str) -> str:
        for needle in self._needles:
            if needle in value:
                value = value.replace(needle, MASK)
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
