"""The report's lines read by DuckDB and pandas with one call each, with proper types.

Neither is a dependency of batcher: these run where they are installed (``pip install
duckdb pandas``) and are skipped elsewhere. The run record lives in its own sidecar, so
the report holds one record type and the readers need no filter.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas
from report_lines import THROTTLED, report_line

from batcher.entry import Entry, Outcome
from batcher.journal import ReportWriter, RunRecord, line_from_outcome, skipped_line, start_run


def written_report(path: Path) -> Path:
    """Lines as the writer writes them (every field, nulls where nothing was sent), and a
    run record beside them."""
    entry = Entry(job_id="job-1", command="SUBMITVERIFYING", source="m.csv:2", project_id="p1")
    with ReportWriter.open(path, resume=False) as writer:
        start_run(writer, RunRecord(run_id="r1", version="0.2.0", started_at="t"))
        writer.write(
            line_from_outcome(
                entry,
                Outcome(succeeded=True, http_status=200, command_result="EXCUTE_SUCCESS"),
                run_id="r1", attempts=1, started_at="2026-11-24T13:00:00.000Z",
                finished_at="2026-11-24T13:00:00.050Z", duration_ms=50.0, wait_ms=2.5,
            )
        )  # fmt: skip
        writer.write(
            skipped_line(
                Entry(job_id="job-1", command="CONFIRM_ACCEPT", source="m.csv:3"),
                "halted",
                run_id="r1",
                at="2026-11-24T13:00:01.000Z",
                project_id="p1",
            )
        )
        writer.write(report_line("job-2", **THROTTLED, project_id="p1", ambiguous=True))
    return path


def test_duckdb_reads_the_report_with_one_call(tmp_path: Path) -> None:
    path = written_report(tmp_path / "r.jsonl")
    relation = duckdb.sql(f"select * from read_json_auto('{path}')")
    types = dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))
    assert types["status"] == "VARCHAR" and types["retryable"] == "BOOLEAN"
    assert types["attempts"] == "BIGINT" and types["duration_ms"] == "DOUBLE"
    assert types["wait_ms"] == "DOUBLE" and types["ambiguous"] == "BOOLEAN"
    assert types["started_at"].startswith("TIMESTAMP") and types["http_status"] == "BIGINT"
    rows = duckdb.sql(
        f"select job_id, status, duration_ms, ambiguous from read_json_auto('{path}') order by 1, 2"
    ).fetchall()
    assert rows == [
        ("job-1", "skipped", None, False),
        ("job-1", "succeeded", 50.0, False),
        ("job-2", "failed", 10.0, True),
    ]


def test_pandas_reads_the_report_with_one_call(tmp_path: Path) -> None:
    frame = pandas.read_json(written_report(tmp_path / "r.jsonl"), lines=True)
    assert len(frame) == 3
    assert str(frame["duration_ms"].dtype) == "float64"
    assert str(frame["attempts"].dtype) == "int64"
    assert str(frame["retryable"].dtype) == "bool" and str(frame["ambiguous"].dtype) == "bool"
    assert frame["duration_ms"].isna().tolist() == [False, True, False]
    assert list(frame["status"]) == ["succeeded", "skipped", "failed"]


def test_duckdb_needs_every_line_sampled_for_values_that_come_late(tmp_path: Path) -> None:
    """DuckDB infers each column's type from the first 20,480 lines: a field null in all of
    them (confirmed_by, comment_data ...) is typed NULL and its later values read as NULL.
    ``sample_size=-1`` (what the README says to use) reads them all."""
    path = tmp_path / "r.jsonl"
    with open(path, "w") as stream:
        for i in range(21_000):
            stream.write(f'{{"job_id":"j{i}","status":"succeeded","confirmed_by":null}}\n')
        stream.write('{"job_id":"late","status":"succeeded","confirmed_by":"operation_log"}\n')
    query = "select confirmed_by from read_json_auto('{}'{}) where job_id = 'late'"
    assert duckdb.sql(query.format(path, ", sample_size=-1")).fetchall() == [("operation_log",)]
