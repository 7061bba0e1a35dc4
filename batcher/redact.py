r"""Redaction: the last line of defence between a secret and any output.

batcher never puts a secret in a message on purpose, but a server can echo one back (an
``error_msg`` quoting the token, a proxy page listing headers) and that text flows into
reasons, the report and the summary. Everything that leaves the process passes here.

The rule: **no output holds 16 or more consecutive characters of a secret, in the text or
in its canonical form** — the text with percent-encoding (any depth, either case of hex),
HTML character references (named, decimal, hexadecimal, zero-padded) and JSON or backslash
escapes (``\/``, ``\u002b``, ``\\``) undone, in any mix, layer after layer (up to 16). A run
of that length is masked wherever it was in the original text, whatever spelled it; so is
the secret's base64 (a header echoed whole). A prefix of a token inside a message, or each
half of one split between two fields, is such a run. (A secret whose own text holds
escapes, a literal ``%41``, is found raw or with every layer undone, not half-decoded: an
assumption, since real keys are base64 or hex.) A secret shorter than :data:`MIN_SECRET`
cannot be masked by this rule and is refused before a run (see :func:`too_short`).

>>> Redactor(["s3cr3t-token-0123456789"]).text("token s3cr3t%2Dtoken%2D0123 refused")
'token *** refused'
"""

from __future__ import annotations

import base64
import functools
import html.entities
import re
from collections.abc import Iterable, Iterator
from typing import Any

MASK = "***"

#: The shortest secret batcher accepts (and the shortest run of one it masks): short
#: enough for any real key (an SK has 40 characters, a token hundreds), long enough that
#: masking its runs does not blank out ordinary words.
MIN_SECRET = 16

# A run of MIN_SECRET characters anywhere in a text holds one of the text's GRAM-long
# slices that start at a multiple of GRAM: probing those few slices against every GRAM-long
# slice of the secrets tells a clean text from one to look at closely.
_GRAM = MIN_SECRET // 2

# One escape of any kind; a percent-encoded UTF-8 character is one unit, its bytes together.
_UNIT = re.compile(
    r"%[0-7][0-9A-Fa-f]|%[CDcd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]"
    r"|%[Ee][0-9A-Fa-f](?:%[89ABab][0-9A-Fa-f]){2}|%[Ff][0-7](?:%[89ABab][0-9A-Fa-f]){3}"
    r"|&#[0-9]{1,8};?|&#[xX][0-9A-Fa-f]{1,8};?|&[A-Za-z][A-Za-z0-9]{1,31};?"
    r"|\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}|\\.",
    re.DOTALL,
)
_ESCAPE_SIGNS = ("%", "&", "\\")
_ESCAPE_BYTES = (b"%", b"&", b"\\")
# Consecutive GRAM-long slices, from the start: the probes of the cheap test.
_CHUNKS = re.compile(f"(?s).{{{_GRAM}}}")
_CHUNKS_B = re.compile(f"(?s).{{{_GRAM}}}".encode())
_FEW_NEEDLES = 12
# Layers of escapes undone at most: "any depth" as far as any echo goes (a URL in a URL in
# JSON in HTML is four), without letting a hostile body of "%2525...25" cost quadratic time.
_MAX_LAYERS = 16
_BACKSLASHED = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


@functools.lru_cache(maxsize=4096)
def _decode(unit: str) -> str:
    """The text one escape stands for (itself when it stands for nothing)."""
    first = unit[0]
    if first == "%":
        return bytes.fromhex(unit.replace("%", "")).decode("utf-8", "replace")
    if first == "&":
        body = unit[1:].removesuffix(";")
        if body[0] == "#":
            code = int(body[2:], 16) if body[1] in "xX" else int(body[1:])
            return chr(code) if code < 0x110000 else unit
        return _named(unit)
    kind = unit[1]
    if kind in "ux" and len(unit) > 2:
        return chr(int(unit[2:], 16))
    return _BACKSLASHED.get(kind, kind)


def _decoded(match: re.Match[str]) -> str:
    return _decode(match.group())


def _named(unit: str) -> str:
    """A named reference: the whole name, or (as browsers read ``&nbsp0``) the longest of
    the old names that need no ``;`` it starts with; else the text itself."""
    entities = html.entities.html5
    if unit.endswith(";") and unit[1:] in entities:
        return entities[unit[1:]]
    name = unit[1:]
    for end in range(len(name.rstrip(";")), 1, -1):
        if name[:end] in entities:  # the keys without ";" are the old names
            return entities[name[:end]] + name[end:]
    return unit


def _unescaped(text: str) -> tuple[str, list[int], list[int]]:
    """``text`` with one layer of escapes undone, and for each character of the result the
    span of ``text`` it came from (``starts[i]`` to ``ends[i]``)."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    at = 0
    for match in _UNIT.finditer(text):
        begin, end = match.span()
        out.append(text[at:begin])
        starts.extend(range(at, begin))
        ends.extend(range(at + 1, begin + 1))
        decoded = _decode(match.group())
        out.append(decoded)
        starts.extend([begin] * len(decoded))
        ends.extend([end] * len(decoded))
        at = end
    out.append(text[at:])
    starts.extend(range(at, len(text)))
    ends.extend(range(at + 1, len(text) + 1))
    return "".join(out), starts, ends


def _forms(text: str) -> Iterator[tuple[str, list[int] | None, list[int] | None]]:
    """``text``, then each further layer of escapes undone until none is left, each with
    the span of ``text`` every character came from (None: the text itself)."""
    yield text, None, None
    current, starts, ends = text, list(range(len(text))), list(range(1, len(text) + 1))
    for _ in range(_MAX_LAYERS):
        if not any(sign in current for sign in _ESCAPE_SIGNS):
            return
        decoded, inner_starts, inner_ends = _unescaped(current)
        if decoded == current:
            return
        starts = [starts[i] for i in inner_starts]
        ends = [ends[i - 1] for i in inner_ends]
        current = decoded
        yield current, starts, ends


def _base64_cores(secret: str) -> set[str]:
    """The part of the base64 of any text holding ``secret`` made of the secret's bytes
    alone, for each of the three places it can start (standard and URL-safe alphabets)."""
    raw = secret.encode("utf-8", "surrogateescape")
    cores: set[str] = set()
    for shift in range(3):
        padded = b"\0" * shift + raw
        core = base64.b64encode(padded).decode()[4 if shift else 0 : len(padded) // 3 * 4]
        if len(core) >= MIN_SECRET:
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


def too_short(secret: str) -> bool:
    """Whether ``secret`` is too short for the rule to mask (see :data:`MIN_SECRET`).

    >>> too_short("abcde"), too_short("x" * 40)
    (True, False)
    """
    return len(secret) < MIN_SECRET


class Redactor:
    r"""Masks every run of :data:`MIN_SECRET` or more characters of a known secret, in text
    and in its canonical form (see the module's rule). Secrets shorter than that are not
    looked for: a run is refused with them before it starts.

    >>> Redactor(["s3cr3t-token-0123456789"]).text(r"bad &#x73;3cr3t\u002dtoken%2D0123 x")
    'bad *** x'
    >>> Redactor(['s3"cr3t-0123456789']).text(r'{"error_msg": "bad s3\"cr3t-0123456789"}')
    '{"error_msg": "bad ***"}'
    """

    __slots__ = ("_byte_grams", "_byte_needles", "_grams", "_needles", "_secrets")

    def __init__(self, secrets: Iterable[str]) -> None:
        # Each text to look for, with the shortest run of it that is masked: a secret's
        # runs of MIN_SECRET; its base64 only whole (a header echoed, not a word of it).
        least: dict[str, int] = {}
        for secret in secrets:
            if secret and not too_short(secret):
                least[secret] = MIN_SECRET
                if " " in secret:  # a form encoding writes spaces as "+", its own sign
                    least[secret.replace(" ", "+")] = MIN_SECRET
                for core in _base64_cores(secret):
                    least.setdefault(core, len(core))
        self._secrets = tuple(sorted(least.items()))
        #: Every GRAM-long slice of every text looked for, to where it sits in which.
        self._grams: dict[str, list[tuple[int, int]]] = {}
        for index, (secret, _) in enumerate(self._secrets):
            for offset in range(len(secret) - _GRAM + 1):
                self._grams.setdefault(secret[offset : offset + _GRAM], []).append((index, offset))
        # The same in UTF-8, to look at a serialised line without decoding it: a run of
        # MIN_SECRET characters is at least as many bytes.
        self._byte_grams = frozenset(_utf8(gram) for gram in self._grams)
        # Slices one of which every masked run holds: those at multiples of GRAM in a
        # secret, the start of a base64 form. For a few short secrets (an SK) a handful of
        # substring searches is the cheapest test; a long token has too many for that, and
        # the text is probed instead.
        needles = {
            secret[at : at + _GRAM] if run == MIN_SECRET else secret[:_GRAM]
            for secret, run in self._secrets
            for at in range(0, len(secret) - _GRAM + 1, _GRAM if run == MIN_SECRET else len(secret))
        }
        few = len(needles) <= _FEW_NEEDLES
        self._needles = tuple(needles) if few else None
        self._byte_needles = tuple(_utf8(needle) for needle in needles) if few else None

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        if not self._grams or not self._suspect(value):
            return value  # nearly every text: no slice of a secret, raw or decoded
        spans = [span for form in _forms(value) for span in self._runs(*form)]
        return _masked(value, spans) if spans else value

    def bytes(self, value: bytes) -> bytes:
        """:meth:`text` for UTF-8 bytes (a serialised line)."""
        if not self._byte_grams:
            return value
        needles = self._byte_needles
        if needles is not None:
            clean = not any(needle in value for needle in needles)
        else:
            clean = self._byte_grams.isdisjoint(_CHUNKS_B.findall(value))
        if clean and not any(sign in value for sign in _ESCAPE_BYTES):
            return value
        text = value.decode("utf-8", "surrogateescape")
        masked = self.text(text)
        return value if masked is text else _utf8(masked)

    def _suspect(self, value: str) -> bool:
        """Whether ``value``, raw or with layers of escapes undone, holds a slice of a
        secret where a run of one would (the cheap test before the exact one)."""
        grams, needles = self._grams.keys(), self._needles
        form = value
        for _ in range(_MAX_LAYERS + 1):
            if needles is not None:
                if any(needle in form for needle in needles):
                    return True
            elif not grams.isdisjoint(_CHUNKS.findall(form)):
                return True
            if not any(sign in form for sign in _ESCAPE_SIGNS):
                return False
            decoded = _UNIT.sub(_decoded, form)
            if decoded == form:
                return False
            form = decoded
        return False

    def deep(self, value: Any) -> Any:
        """Redact every string inside dicts, lists and tuples."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.deep(v) for v in value)
        return value

    def _runs(
        self, form: str, starts: list[int] | None, ends: list[int] | None
    ) -> Iterator[tuple[int, int]]:
        """The spans of the original text behind every run of a secret in ``form``."""
        grams, secrets = self._grams, self._secrets
        for at in range(0, len(form) - _GRAM + 1, _GRAM):
            for index, offset in grams.get(form[at : at + _GRAM], ()):
                secret, least = secrets[index]
                left = 0
                while left < min(at, offset) and form[at - left - 1] == secret[offset - left - 1]:
                    left += 1
                right = at + _GRAM
                end = offset + _GRAM
                while right < len(form) and end < len(secret) and form[right] == secret[end]:
                    right, end = right + 1, end + 1
                begin = at - left
                if right - begin >= least:
                    if starts is None or ends is None:
                        yield begin, right
                    else:
                        yield starts[begin], ends[right - 1]


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each of ``spans`` (merged where they overlap) replaced by the mask."""
    merged: list[list[int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    out: list[str] = []
    at = 0
    for begin, end in merged:
        out += (text[at:begin], MASK)
        at = end
    out.append(text[at:])
    return "".join(out)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
