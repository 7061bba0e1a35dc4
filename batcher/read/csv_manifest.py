"""CSV manifests: streamed row by row, every problem at its line and column."""

from __future__ import annotations

import codecs
import csv
import functools
from collections.abc import Container, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from batcher.entry import BLANKS, COMMENT_FIELDS, Path, key_digest
from batcher.errors import Problem
from batcher.read._problems import csv_field, did_you_mean, field_name, unknown
from batcher.read._text import BOM, BOM_MESSAGE, MAX_LINE_BYTES, SNIFF_BYTES, sniff
from batcher.read._validate import Record, Validator

#: The columns a CSV manifest may have (``comment_*`` and ``attachment_name`` fill
#: ``comment_data``; ``attachment_name`` holds several names separated by ``;``;
#: ``project_id``, when set, sends the entry to that project instead of the run's).
CSV_COLUMNS: tuple[str, ...] = (
    "job_id",
    "command",
    "command_message",
    "operation_reason",
    "comment_title",
    "comment_message",
    "attachment_name",
    "app_user_id",
    "project_id",
)

__all__ = ["COMMENT_FIELDS", "CSV_COLUMNS", "csv_records"]


def _csv_locate(line: int, path: Path) -> tuple[int, str | None]:
    """Where a field of a CSV record is: the record's line, and the column's name."""
    return line, csv_field(path)


class _Unreadable(Exception):
    """The rest of the file cannot be read as CSV (its problem is already recorded)."""


def _text_lines(name: str, handle: BinaryIO, problems: list[Problem]) -> Iterator[str]:
    """Decode ``handle`` line by line, so a bad byte is reported at its line."""
    number = 0
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            message = (
                f"line longer than {MAX_LINE_BYTES >> 20} MiB: this is not a CSV manifest "
                "(or its line endings are not LF or CRLF); the rest of the file was not read"
            )
            problems.append(Problem(name, number, None, message))
            raise _Unreadable
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            text = raw.decode("utf-8")
            if BOM in text:  # said once, and the line read without it
                problems.append(Problem(name, number, None, BOM_MESSAGE))
                text = text.replace(BOM, "")
            yield text
        except UnicodeDecodeError as error:
            problems.append(
                Problem(
                    name,
                    number,
                    None,
                    f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at position "
                    f"{error.start + 1} of the line); save the file as UTF-8",
                )
            )
            yield raw.decode("utf-8", "replace")


def _csv_rows(
    name: str, handle: BinaryIO, problems: list[Problem]
) -> Iterator[tuple[int, list[str] | None]]:
    """Yield ``(first line, cells)`` per record; cells is None for an unreadable record
    (its problem is in ``problems``). Blank rows are skipped."""
    reader = csv.reader(_text_lines(name, handle, problems), strict=True)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except (StopIteration, _Unreadable):
            return
        except csv.Error as error:
            problems.append(Problem(name, start, None, _csv_error(error)))
            yield start, None
            continue
        if any(cell.strip(BLANKS) for cell in cells):
            yield start, cells


def _csv_error(error: csv.Error) -> str:
    """The reader's complaint in the words of someone fixing the file."""
    if "new-line character seen in unquoted field" in str(error):
        return (
            "a carriage return (CR) in the middle of a line, outside quotes: the file mixes "
            "line endings; save it with LF or CRLF line endings (or quote the field)"
        )
    return f"unreadable CSV: {error}"


@dataclass(slots=True)
class _Header:
    line: int
    names: list[str]
    columns: dict[str, int]  # known column -> index
    usable: bool  # False: a required column is missing, so rows are not checked

    def command_in(self, cells: list[str]) -> str:
        """The row's command as written ('' when the cell or the column is empty/absent)."""
        index = self.columns.get("command")
        return "" if index is None else cells[index].strip(BLANKS)


def _csv_header(
    name: str, line: int, cells: list[str], default_command: str | None
) -> tuple[_Header, list[Problem]]:
    names = [cell.strip(BLANKS) for cell in cells]
    if not any(cell in CSV_COLUMNS or did_you_mean(cell, CSV_COLUMNS) for cell in names):
        # Not a manifest's header at all: say so without quoting the line back, which may
        # be anything (another program's file behind a link).
        message = (
            "the first row names none of a manifest's columns (job_id, command, ...): "
            "this is not a CSV manifest, or its header row is missing"
        )
        return _Header(line, names, {}, usable=False), [Problem(name, line, None, message)]
    problems: list[Problem] = []
    columns: dict[str, int] = {}
    for number, column in enumerate(names, start=1):
        if not column:
            problems.append(Problem(name, line, None, f"column {number} has no name"))
        elif column in columns:
            problems.append(Problem(name, line, column, "the column appears twice"))
        elif column not in CSV_COLUMNS:
            message = unknown("column", column, CSV_COLUMNS)
            problems.append(Problem(name, line, field_name(column), message))
        else:
            columns[column] = number - 1
    usable = True
    if "job_id" not in columns:
        usable = False
        problems.append(Problem(name, line, "job_id", "the header has no job_id column"))
    if "command" not in columns and default_command is None:
        usable = False
        problems.append(
            Problem(
                name,
                line,
                "command",
                "the header has no command column (add one, or give a default command "
                "with --command)",
            )
        )
    return _Header(line, names, columns, usable), problems


def _csv_data(header: _Header, cells: list[str]) -> dict[str, Any]:
    values = {column: cells[index].strip(BLANKS) for column, index in header.columns.items()}
    data: dict[str, Any] = {}
    comment: dict[str, Any] = {}
    for column, value in values.items():
        if not value:
            continue  # an empty cell is an absent field
        if column == "attachment_name":
            # One ';' may end the list; any other empty name is kept for the schema to
            # refuse, where dropping it would quietly send fewer names than were meant.
            names = [part.strip(BLANKS) for part in value.removesuffix(";").split(";")]
            comment[column] = tuple(names)
        elif column in COMMENT_FIELDS:
            comment[column] = value
        else:
            data[column] = value
    if comment:
        data["comment_data"] = comment
    return data


def csv_records(
    name: str,
    handle: BinaryIO,
    validator: Validator,
    *,
    check: bool = True,
    done: Container[int] = (),
) -> Iterator[Record]:
    """Every record of a CSV manifest, header first. ``check`` False: the second pass, where
    a row whose key digest is in ``done`` comes as a ``done`` record, its fields not read."""
    head = handle.read(SNIFF_BYTES)
    handle.seek(0)
    what = sniff(head, csv=True)
    if what is not None:
        yield Record(what[0], None, [Problem(name, what[0], None, what[1])])
        return
    problems: list[Problem] = []  # filled by the reader as it goes (decoding, quoting)
    header: _Header | None = None
    for line, cells in _csv_rows(name, handle, problems):
        found = problems[:]
        problems.clear()  # in place: the line decoder appends to this very list
        if cells is None:
            yield Record(line, None, found)
            if header is None:  # no header to read the rows by: the next row is not one
                header = _Header(line, [], {}, usable=False)
            continue
        if header is None:
            header, more = _csv_header(name, line, cells, validator.default_command)
            yield Record(line, None, found + more)
            continue
        if not header.usable:
            if found:
                yield Record(line, None, found)
            continue
        if found:  # undecodable bytes: the row's values are not what the user wrote
            yield Record(line, None, found)
            continue
        if len(cells) != len(header.names):
            found.append(
                Problem(
                    name,
                    line,
                    None,
                    f"the row has {len(cells)} cells but the header has "
                    f"{len(header.names)} columns",
                )
            )
            yield Record(line, None, found)
            continue
        if done:
            job_id = cells[header.columns["job_id"]].strip(BLANKS)
            command = header.command_in(cells) or validator.default_command
            if command is not None and key_digest(job_id, command) in done:
                yield Record(line, None, done=True)
                continue
        record = validator.build(
            _csv_data(header, cells),
            file=name,
            line=line,
            locate=functools.partial(_csv_locate, line),
            check=check,
        )
        yield record
    if problems:
        yield Record(problems[0].line or 1, None, problems)
    elif header is None:
        yield Record(1, None, [Problem(name, 1, None, "the file is empty")])
