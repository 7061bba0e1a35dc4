"""What a manifest's bytes are: UTF-8 text, or something to name plainly (UTF-16, UTF-32,
old Mac line endings), and the UTF-8 check of a YAML manifest as it streams by.

>>> sniff(b"j\\x00o\\x00b\\x00_\\x00i\\x00d\\x00", csv=True)
(1, 'the file looks like UTF-16 (LE); save it as UTF-8')
>>> sniff(b"job_id\\nj\\x001", csv=True)
(2, 'a NUL byte: this is not a text file (a manifest is UTF-8 text)')
"""

from __future__ import annotations

import codecs
import re
from typing import BinaryIO

from batcher.errors import Problem

#: How much of a file is looked at to tell what it is.
SNIFF_BYTES = 1 << 16

#: A physical line of a CSV manifest may be this long (a real row is a few KB; the csv
#: module refuses a field over 128 KB anyway): a longer one is not a CSV manifest.
MAX_LINE_BYTES = 1 << 20

#: The most of a YAML file one value (an entry, a setting) may take: libyaml holds a whole
#: scalar in memory, so a gigabyte-long one must be refused before it is read to its end.
MAX_VALUE_BYTES = 16 << 20

_SAVE_AS = "save it as UTF-8"


class Fatal(Exception):
    """The rest of the file cannot be read; ``problem`` says why. ``whole_file``: the file
    cannot be read at all (not text, not YAML), and that is all there is to say about it."""

    def __init__(self, problem: Problem, *, whole_file: bool = False) -> None:
        super().__init__(problem.message)
        self.problem = problem
        self.whole_file = whole_file


def sniff(head: bytes, *, csv: bool) -> tuple[int, str] | None:
    """Why ``head`` (a file's first bytes) is not a UTF-8 manifest we can read, and the line
    to say it at, or None. Nothing of the file is quoted: it may be anything (a link to
    ``/proc/self/environ``), and its contents are not ours to echo."""
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if head.startswith(bom):
            return 1, f"the file is {name}; {_SAVE_AS}" + (" (CSV UTF-8)" if csv else "")
    if b"\x00" in head:
        guess = _wide_guess(head)
        if guess is not None:
            return 1, f"the file looks like {guess}; {_SAVE_AS}"
        if not head.strip(b"\x00"):
            return 1, "the file holds only NUL bytes; a manifest is UTF-8 text"
        line = head.count(b"\n", 0, head.index(b"\x00")) + 1
        return line, "a NUL byte: this is not a text file (a manifest is UTF-8 text)"
    if csv and b"\r" in head and b"\n" not in head:
        return 1, (
            "the file has old Mac line endings (CR only), which the CSV reader cannot "
            "split into rows; re-save it as UTF-8 with LF or CRLF line endings"
        )
    return None


#: A byte order mark anywhere but at the very start: files joined together, or saved
#: twice as "UTF-8 with BOM". Invisible in an editor, so it is named, not quoted.
BOM = "\ufeff"
BOM_MESSAGE = (
    "a byte order mark (U+FEFF) past the start of the file, invisible in most editors "
    "(files joined together, or saved twice with a BOM); delete it"
)


def _wide_guess(head: bytes) -> str | None:
    """UTF-16 or UTF-32 without a byte order mark, told from where the NUL bytes fall
    (a manifest's header and ids are ASCII, so most of its characters have them)."""
    sample = head[: len(head) - len(head) % 4]
    if len(sample) < 8 or not sample.strip(b"\x00"):
        return None
    zeros = [sample[offset::4].count(0) / (len(sample) // 4) for offset in range(4)]
    if zeros[2] > 0.9 and zeros[3] > 0.9 and zeros[0] < 0.5:
        return "UTF-32 (LE)"
    if zeros[0] > 0.9 and zeros[1] > 0.9 and zeros[3] < 0.5:
        return "UTF-32 (BE)"
    odd, even = (zeros[1] + zeros[3]) / 2, (zeros[0] + zeros[2]) / 2
    if odd > 0.3 and even < 0.05:
        return "UTF-16 (LE)"
    if even > 0.3 and odd < 0.05:
        return "UTF-16 (BE)"
    return None


#: Characters YAML does not allow in a document (libyaml's and PyYAML's rule), as UTF-8
#: bytes: C0 controls but tab and line breaks, DEL, C1 controls but NEL, U+FFFE, U+FFFF.
_NOT_PRINTABLE = re.compile(
    rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2[\x80-\x84\x86-\x9f]|\xef\xbf[\xbe\xbf]"
)

# The same, one byte at a time: a character class is searched many times faster than the
# alternation, and the two-byte cases are ruled out first by a substring search.
_CONTROL_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(data: bytes) -> bool:
    if _CONTROL_BYTE.search(data) is not None:
        return False
    if b"\xc2" not in data and b"\xef\xbf" not in data:
        return True
    return _NOT_PRINTABLE.search(data) is None


def _incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` start a UTF-8 sequence it does not finish."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return 0
        if byte >= 0xC0:  # a lead byte: does the sequence fit?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return back if back < need else 0
    return 0


class YamlText:
    """A YAML manifest's bytes for the parser, checked on the way: ``read()`` gives the
    parser UTF-8 (BOM removed) in chunks. The first undecodable byte, or character YAML
    forbids, ends the reading with a :class:`Fatal` problem at its line (a file that is not
    UTF-8 text is reported as that alone, as when it was decoded whole)."""

    def __init__(self, name: str, stream: BinaryIO, *, chunk: int = SNIFF_BYTES) -> None:
        self.name = name
        #: Bytes handed to the parser so far (the file's alias budget grows with it).
        self.consumed = 0
        #: Where the value being read began (``consumed`` then, and its line).
        self.value_start = 0
        self.value_line = 1
        self._stream = stream
        self._chunk = chunk
        self._carry = b""
        self._line = 1  # line number at the start of the next chunk
        self._first = True
        self._done = False

    def read(self, size: int = -1) -> bytes:
        del size  # the parser takes what it is given, whatever it asked for
        if self.consumed - self.value_start > MAX_VALUE_BYTES:
            limit = MAX_VALUE_BYTES
            shown = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit:,} bytes"
            message = (
                f"a single value takes more than {shown} of the file; "
                "the rest of the file was not read"
            )
            raise Fatal(Problem(self.name, self.value_line, None, message))
        while not self._done:
            raw = self._stream.read(self._chunk)
            if self._first:
                self._first = False
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw:
                self._done = True
                data, self._carry = self._carry, b""
            else:
                data = self._carry + raw
                cut = len(data) - _incomplete_tail(data)
                data, self._carry = data[:cut], data[cut:]
            if data:
                checked = self._check(data)
                self.consumed += len(checked)
                return checked
        return b""

    def _check(self, data: bytes) -> bytes:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = self._line + data.count(b"\n", 0, error.start)
            message = f"not valid UTF-8 (byte 0x{data[error.start]:02x}); save as UTF-8"
            raise Fatal(Problem(self.name, line, None, message), whole_file=True) from None
        bom = data.find(codecs.BOM_UTF8)
        if bom >= 0:
            line = self._line + data.count(b"\n", 0, bom)
            raise Fatal(Problem(self.name, line, None, BOM_MESSAGE))
        if not _printable(data):
            found = _NOT_PRINTABLE.search(data)
            assert found is not None
            line = self._line + data.count(b"\n", 0, found.start())
            message = "YAML syntax error: control characters are not allowed"
            raise Fatal(Problem(self.name, line, None, message), whole_file=True)
        self._line += data.count(b"\n")
        return data
