"""Preflight: everything a run needs, checked before anything is sent, every problem at once.

A cron line that is missing its region, project id and credentials learns all three in
one run (exit 2), not in three. ``--dry-run`` does the same checks as the real run, so it
exits 2 exactly when the real run would refuse, and its plan says what the real run would
do: entries already done (``--resume``), entries in doubt, and what ``--limit`` leaves.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import ManifestError, SettingsError
from .manifest import Manifests, ManifestSummary
from .metastudio.credentials import read_credentials_file
from .settings import Options, RunSettings, resolve


@dataclass(frozen=True, slots=True)
class Checked:
    """Settings and manifests that passed preflight."""

    settings: RunSettings
    summary: ManifestSummary


def check_run(
    paths: list[str],
    options: Options,
    *,
    manifests: Manifests,
    report: Path | None,
    resume: bool,
    dry_run: bool,
    metrics_file: Path | None = None,
) -> Checked:
    """Check the settings, the report path and every manifest entry; raise
    :class:`~batcher.errors.SettingsError` listing every settings problem, or
    :class:`~batcher.errors.ManifestError` (with the settings problems too) when an entry
    is invalid."""
    problems: list[str] = []
    settings: RunSettings | None = None
    try:
        settings = resolve(options)
    except SettingsError as error:
        problems += error.problems
    if report is None:
        if not dry_run:
            problems.append(
                "a report path is required: --report PATH (report= in Python), or a dry run"
            )
    else:
        problems += report_problems(report, resume=resume, manifests=paths)
    if metrics_file is not None:
        problems += metrics_problems(metrics_file, report=report, manifests=paths)
    try:
        summary = manifests.check()
    except ManifestError as error:
        error.settings_problems = problems
        raise
    lacking = summary.without_project_id is not None and (
        settings is None or settings.project_id is None
    )
    if lacking and not any(problem.startswith("no project id") for problem in problems):
        problems.append(
            f"no project id for {summary.without_project_id} (and every entry without "
            "one): pass --project-id, set HUAWEICLOUD_SDK_PROJECT_ID, put project_id in "
            "the credentials file, or give the manifest a project_id"
        )
    if problems:
        raise SettingsError(problems)
    assert settings is not None
    return Checked(settings, summary)


def project_for_manifests(options: Options) -> str | None:
    """The run's project id as far as it can be known before the settings are checked (to
    fill entries whose manifest names none); None when unknown or malformed."""
    from .entry import PATH_ID_RE

    project = options.project_id or os.environ.get("HUAWEICLOUD_SDK_PROJECT_ID")
    if not project and not options.simulate:
        from_file = read_credentials_file(quiet=True)
        project = from_file.project_id if from_file else None
    if options.simulate and not project:
        from .settings import SIMULATED_PROJECT_ID

        project = SIMULATED_PROJECT_ID
    return project if project and PATH_ID_RE.match(project) else None


def report_problems(report: Path, *, resume: bool, manifests: list[str]) -> list[str]:
    """Why ``report`` cannot be this run's report (empty when it can)."""
    problems = []
    try:
        status = report.stat()
    except FileNotFoundError:
        status = None
    except OSError as error:
        return [f"report {report}: {error.strerror}"]
    # The in-flight file and the run record go beside the report's real path, so its
    # directory must be writable even when the report itself already exists.
    directory = Path(os.path.realpath(report)).parent
    if not directory.is_dir():
        return [f"report {report}: no directory {directory}"]
    if not os.access(directory, os.W_OK | os.X_OK):
        problems.append(f"report {report}: directory {directory} is not writable")
    if status is not None:
        if not stat.S_ISREG(status.st_mode):
            problems.append(f"report {report} exists and is not a regular file")
        elif status.st_size and not resume:
            problems.append(
                f"report {report} already exists and is not empty; add --resume to continue "
                "it, or choose another --report path"
            )
        for path in manifests:
            if path != "-" and _same_file(report, Path(path), status):
                problems.append(
                    f"report {report} is the manifest {path} (the same file by another name): "
                    "writing the report would destroy it; choose another --report path"
                )
        if stat.S_ISREG(status.st_mode) and not os.access(report, os.W_OK):
            problems.append(f"report {report} is not writable")
    problems += _file_system_problems(report)
    problems += _sidecar_problems(report)
    return problems


def _file_system_problems(report: Path) -> list[str]:
    """A report on a read-only or full file system fails at its first line: say so now."""
    from .report._writer import MIN_FREE_BYTES

    directory = Path(os.path.realpath(report)).parent
    try:
        fs = os.statvfs(directory)
    except OSError:
        return []
    if fs.f_flag & os.ST_RDONLY:
        return [f"report {report}: {directory} is on a read-only file system"]
    if fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
        return [f"report {report}: no space left on the file system of {directory}"]
    return []


def _sidecar_problems(report: Path) -> list[str]:
    """The run record and the in-flight slots beside the report must be usable files."""
    from .report import runs_path
    from .report.inflight import inflight_path

    problems = []
    for sidecar, what in (
        (runs_path(report), "run record"),
        (inflight_path(report), "in-flight file"),
    ):
        try:
            status = sidecar.stat()
        except FileNotFoundError:
            continue
        except OSError as error:
            problems.append(f"the {what} {sidecar} of report {report}: {error.strerror}")
            continue
        if not stat.S_ISREG(status.st_mode):
            problems.append(
                f"the {what} {sidecar} of report {report} is not a regular file: move it away"
            )
    runs = runs_path(report)
    if runs.is_file():
        from .report import read_runs

        bad: list[tuple[int, str]] = []
        read_runs(report, on_bad_line=lambda lineno, why: bad.append((lineno, why)))
        if bad and bad[0][0] == 0:
            problems.append(f"the run record of report {report}: {bad[0][1]}")
        elif bad:
            problems.append(
                f"{runs}:{bad[0][0]} is not a batcher run record; the run record of report "
                f"{report} goes there: move that file away"
            )
    return problems


def _same_file(report: Path, manifest: Path, report_status: os.stat_result) -> bool:
    try:
        other = manifest.stat()
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (report_status.st_dev, report_status.st_ino)


#: The start of a Prometheus text file: a HELP or TYPE comment, or a sample line.
_PROMETHEUS_TEXT = re.compile(
    rb"# (HELP|TYPE) [a-zA-Z_:]"
    rb"|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}\n]*\})?[ \t]+[-+0-9.eEaINnf]+[ \t]*(\d+)?\n"
)


def metrics_problems(metrics: Path, *, report: Path | None, manifests: list[str]) -> list[str]:
    """Why ``metrics`` cannot be the run's metrics file: it would overwrite the report, a
    manifest, a sidecar, or a file that is not Prometheus text."""
    from .report import runs_path
    from .report.inflight import inflight_path

    if not metrics.parent.is_dir():
        return [f"--metrics-file {metrics}: no directory {metrics.parent}"]
    theirs = [Path(m) for m in manifests if m != "-"]
    if report is not None:
        theirs += [report, runs_path(report), inflight_path(report)]
    for other in theirs:
        if _same_path_or_file(metrics, other):
            return [
                f"--metrics-file {metrics} is {other}: writing metrics there would destroy "
                "it; choose another path"
            ]
    try:
        status = metrics.stat()
    except FileNotFoundError:
        return []
    except OSError as error:
        return [f"--metrics-file {metrics}: {error.strerror}"]
    if not stat.S_ISREG(status.st_mode):
        return [f"--metrics-file {metrics} exists and is not a regular file"]
    with open(metrics, "rb") as stream:
        head = stream.read(4096)
    if head.strip() and not _PROMETHEUS_TEXT.match(head.lstrip()):
        return [
            f"--metrics-file {metrics} exists and is not a Prometheus text file; batcher "
            "replaces only its own metrics files"
        ]
    return []


def _same_path_or_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        first, second = a.stat(), b.stat()
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)
