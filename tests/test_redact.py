"""Secrets masked in the spellings servers and proxies echo them in."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batcher.redact import MASK, Redactor

TOKEN = "MIIsecr+et/Tok3n=+/abc\"DEF'<é>=="


def _php_json(text: str) -> str:  # PHP's json_encode escapes "/" too
    return json.dumps(text)[1:-1].replace("/", "\\/")


def _go_template(text: str) -> str:  # Go's html/template
    table = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;", "+": "&#43;"}
    return "".join(table.get(c, c) for c in text)


def _entities(pattern: str) -> Callable[[str], str]:
    return lambda text: "".join(c if c.isalnum() else pattern.format(ord(c)) for c in text)


def _dotnet_json(text: str) -> str:  # System.Text.Json's default encoder
    escaped = set("\"&'+<>`")
    return "".join(
        f"\\u{ord(c):04X}" if c in escaped or ord(c) > 126 else "\\\\" if c == "\\" else c
        for c in text
    )


def _go_json(text: str) -> str:  # encoding/json: <, > and & as \u003c, \u003e, \u0026
    table = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
    return "".join(table.get(c, c) for c in json.dumps(text, ensure_ascii=False)[1:-1])


def _java_json(text: str) -> str:  # upper-case hex in \u escapes (Jackson and others)
    return re.sub(r"\\u[0-9a-f]{4}", lambda m: "\\u" + m.group(0)[2:].upper(),
                  json.dumps(text)[1:-1])  # fmt: skip


SPELLINGS: dict[str, Callable[[str], str]] = {
    "JSON, .NET": _dotnet_json,
    "JSON, Go": _go_json,
    "JSON, upper-case hex": _java_json,
    "raw": lambda t: t,
    "JSON": lambda t: json.dumps(t)[1:-1],
    "JSON, PHP": _php_json,
    "JSON twice": lambda t: json.dumps(json.dumps(t)[1:-1])[1:-1],
    "URL": lambda t: quote(t, safe=""),
    "URL, '/' kept": quote,
    "URL, encodeURI": lambda t: quote(t, safe="!~*'();,/?:@&=+$#"),
    "URL, form": quote_plus,
    "URL twice": lambda t: quote(quote(t, safe=""), safe=""),
    "HTML": html.escape,
    "HTML, Go": _go_template,
    "HTML, decimal references": _entities("&#{};"),
    "HTML, hex references": _entities("&#x{:x};"),
    "base64": lambda t: base64.b64encode(f"user:{t}".encode()).decode(),
}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_each_spelling_is_masked_in_text_and_bytes(spelling: str) -> None:
    redactor = Redactor([TOKEN])
    echoed = SPELLINGS[spelling](TOKEN)
    text = f"bad token {echoed} here"
    masked = redactor.text(text)
    assert MASK in masked and "secr" not in masked and "Tok3n" not in masked
    assert redactor.bytes(text.encode()) == masked.encode()


def test_text_without_a_secret_is_returned_as_it_is() -> None:
    redactor = Redactor([TOKEN, "another-secret-value"])
    line = '{"job_id":"j1","status":"succeeded","reason":null,"source":"MIIsec.csv:2"}'
    assert redactor.text(line) == line  # a beginning alike is not a secret
    assert redactor.bytes(line.encode()) == line.encode()


@given(st.text(min_size=8, max_size=40), st.sampled_from(sorted(SPELLINGS)))
def test_any_secret_in_any_listed_spelling_is_masked(secret: str, spelling: str) -> None:
    redactor = Redactor([secret])
    echoed = SPELLINGS[spelling](secret)
    masked = redactor.text(f"<{echoed}>")
    assert echoed not in masked or echoed in MASK
