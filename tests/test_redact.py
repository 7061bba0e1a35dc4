"""Secrets masked by their canonical form: every run of 16 characters of one, whatever
mix of encodings spells it; secrets too short for that are refused."""

from __future__ import annotations

import base64
import html
import html.entities
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batcher.config import Options, resolve
from batcher.errors import SettingsError
from batcher.redact import MASK, MIN_SECRET, Redactor, too_short

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


# -- the rule: no 16 consecutive characters of a secret, in any spelling -----------------------

_NAMED = {value: name for name, value in reversed(html.entities.html5.items()) if len(value) == 1}


def _one(char: str, how: int) -> str:
    """``char`` in one of the spellings an encoder may pick for it."""
    code = ord(char)
    utf8 = "".join(f"%{byte:02X}" for byte in char.encode())
    spelled = [
        char,
        utf8,
        utf8.lower(),
        utf8.replace("%", "%25"),  # percent-encoded twice
        f"&#{code};",
        f"&#{code:06d};",  # zero-padded
        f"&#x{code:x};",
        f"&{_NAMED[char]}" if char in _NAMED else char,
        f"\\u{code:04x}" if code < 0x10000 else char,
        f"\\u{code:04X}" if code < 0x10000 else char,
        f"\\{char}" if not char.isalnum() and char not in "nrtbfux" else char,
    ]
    return spelled[how % len(spelled)]


def _layer(text: str, how: int) -> str:
    """``text`` inside one more layer: JSON, a URL, HTML, or none."""
    return [
        text,
        json.dumps(text)[1:-1],
        quote(text, safe=""),
        html.escape(text),
        json.dumps(text, ensure_ascii=False)[1:-1].replace("/", "\\/"),
    ][how % 5]


def _canonical_forms(text: str) -> set[str]:
    """``text`` with escapes undone in every order, by the standard library's decoders (not
    the redactor's), as far as they go."""

    def backslashes(value: str) -> str:
        value = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), value)
        return re.sub(r"\\(.)", r"\1", value)

    decoders = (unquote, html.unescape, backslashes)
    seen, todo = {text}, [text]
    while todo and len(seen) < 200:
        current = todo.pop()
        for decode in decoders:
            decoded = decode(current)
            if decoded not in seen:
                seen.add(decoded)
                todo.append(decoded)
    return seen


def _longest_run(text: str, secret: str) -> int:
    """The longest stretch of ``secret`` that ``text`` holds."""
    best = 0
    previous = [0] * (len(secret) + 1)
    for char in text:
        current = [0] * (len(secret) + 1)
        for j, other in enumerate(secret, start=1):
            if char == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


# Any text but the three signs that begin escapes: a secret holding a literal "%41" is
# found raw or fully decoded, not half-decoded (real keys are base64 or hex).
_SECRET = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"], exclude_characters="%&\\"),
    min_size=16,
    max_size=48,
)


@settings(max_examples=150, deadline=None)
@given(
    secret=_SECRET,
    hows=st.lists(st.integers(0, 10), min_size=48, max_size=48),
    layers=st.lists(st.integers(0, 4), max_size=3),
    cut=st.integers(0, 40),
    around=st.sampled_from(["", "token ", '{"error_msg": "', "a%b&c\\d "]),
)
def test_no_run_of_16_secret_characters_survives_any_mix_of_encodings(
    secret: str, hows: list[int], layers: list[int], cut: int, around: str
) -> None:
    shown = secret[cut % (len(secret) - 15) :]  # a tail of the secret, 16 characters or more
    echoed = "".join(_one(char, how) for char, how in zip(shown, hows, strict=False))
    for how in layers:
        echoed = _layer(echoed, how)
    masked = Redactor([secret]).text(f"{around}{echoed} tail")
    for form in _canonical_forms(masked):
        assert _longest_run(form, secret) < MIN_SECRET, (masked, form)


@given(secret=_SECRET, text=st.text(max_size=60))
def test_text_that_holds_no_run_of_a_secret_is_left_alone(secret: str, text: str) -> None:
    if all(_longest_run(form, secret) < MIN_SECRET for form in _canonical_forms(text)):
        assert Redactor([secret]).text(text) == text


def test_a_prefix_of_a_token_inside_a_message_is_masked() -> None:
    token = "MIIT" + "".join(chr(65 + (n * 7) % 26) for n in range(2000))
    redactor = Redactor([token])
    for length in (16, 40, 50):
        message = f"invalid token {token[:length]}... (expired)"
        assert redactor.text(message) == "invalid token ***... (expired)"
    assert redactor.text(f"near {token[:15]} miss") == f"near {token[:15]} miss"


def test_a_token_split_between_two_fields_survives_in_neither() -> None:
    token = "x-auth-token-" + "0123456789abcdef" * 4
    redactor = Redactor([token])
    for split in (16, 20, len(token) // 2, len(token) - 16):
        fields = {"error_code": token[:split], "error_msg": "bad " + token[split:]}
        masked = redactor.deep(fields)
        line = redactor.bytes(json.dumps(fields).encode()).decode()
        for text in (*masked.values(), line):
            assert _longest_run(text, token) < MIN_SECRET, text


def test_secrets_too_short_to_mask_are_refused_before_a_run() -> None:
    environ = {
        "HUAWEICLOUD_SDK_AK": "AK0123456789",
        "HUAWEICLOUD_SDK_SK": "abcde",
        "HUAWEICLOUD_SDK_PROJECT_ID": "p1",
    }
    with pytest.raises(SettingsError) as caught:
        resolve(Options(endpoint="http://127.0.0.1:9"), environ=environ)
    (problem,) = caught.value.problems
    assert problem.startswith("the SK has 5 characters, too few to be masked safely")
    assert "abcde" not in problem
    assert not too_short("x" * MIN_SECRET) and Redactor(["abcde"]).text("abcde") == "abcde"


def test_a_run_with_a_five_character_sk_exits_2_saying_why(tmp_path: Path) -> None:
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("job_id,command\nj1,SUBMITVERIFYING\n", encoding="utf-8")
    report = tmp_path / "r.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUAWEICLOUD_", "CLOUD_SDK"))}
    env |= {"HUAWEICLOUD_SDK_AK": "AK0123456789", "HUAWEICLOUD_SDK_SK": "abcde"}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "batcher", "run", str(manifest), "--report", str(report)),
            *("--endpoint", "http://127.0.0.1:9", "--project-id", "p1", "--no-progress"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env | {"HOME": str(tmp_path)},
    )
    assert result.returncode == 2, result.stderr
    assert "the SK has 5 characters, too few to be masked safely" in result.stderr
    assert "abcde" not in result.stderr and "Traceback" not in result.stderr
    assert not report.exists()


def test_escapes_nested_without_end_cost_linear_time() -> None:
    redactor = Redactor(["s3cr3t-token-0123456789"])
    hostile = "%" + "25" * 200_000 + "41 " + "&amp;" * 50_000
    started = time.perf_counter()
    assert redactor.text(hostile) == hostile
    assert time.perf_counter() - started < 2.0  # quadratic would take minutes
