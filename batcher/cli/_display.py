"""What the CLI draws on a terminal while a run goes: a live view that nothing tears.

rich keeps the view at the bottom of the terminal and prints log lines above it (the log
setup writes to whatever ``sys.stderr`` is, which the live view redirects). When the run
ends the view goes away, and the summary and the next step are printed instead.
"""

from __future__ import annotations

import io
import time
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from batcher.send.progress import Snapshot, format_duration

if TYPE_CHECKING:
    from batcher.select.paging import Paging


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}/s"


def render_run(snap: Snapshot) -> Group:
    """The view of a run: a bar, the counts, and the pace."""
    total = snap.total or 0
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=total or None, completed=snap.done, width=40),
        Text(f"{snap.done:,}/{total:,}" if total else f"{snap.done:,}", style="bold"),
        Text(f"{100 * snap.done / total:.0f}%" if total else ""),
    )
    counts = Text.assemble(
        ("ok ", "dim"), (f"{snap.succeeded:,}", "green"),
        ("  failed ", "dim"), (f"{snap.failed:,}", "red" if snap.failed else ""),
        ("  skipped ", "dim"), (f"{snap.skipped:,}", "yellow" if snap.skipped else ""),
        ("  retries ", "dim"), f"{snap.retries:,}",
        ("  throttled ", "dim"), (f"{snap.throttled:,}", "magenta" if snap.throttled else ""),
        ("  in flight ", "dim"), f"{snap.in_flight:,}",
    )  # fmt: skip
    if snap.already_done:
        counts.append(f"  already done {snap.already_done:,}", style="dim")
    if snap.confirmed or snap.ambiguous:
        counts.append(f"  confirmed {snap.confirmed:,} ambiguous {snap.ambiguous:,}", style="dim")
    limit = "unlimited" if snap.limit == 0 else _rate(snap.limit)
    eta = "-" if snap.eta_s is None else format_duration(snap.eta_s)
    pace = Text.assemble(
        ("rate ", "dim"), _rate(snap.recent_rate), ("  average ", "dim"), _rate(snap.rate),
        ("  limit ", "dim"), limit,
        ("  elapsed ", "dim"), format_duration(snap.elapsed_s), ("  ETA ", "dim"), eta,
    )  # fmt: skip
    return Group(bar, counts, pace)


def render_bar(snap: Snapshot) -> str:
    """The view as plain text (for tests and dumb terminals)."""
    console = Console(width=120, record=True, file=io.StringIO(), color_system=None)
    console.print(render_run(snap))
    return console.export_text()


class LiveView:
    """A live view on the terminal, updated with each snapshot; log lines go above it.

    >>> with LiveView() as view:  # doctest: +SKIP
    ...     view(snapshot)
    """

    def __init__(self, console: Console | None = None) -> None:
        self._live = Live(
            console=console or Console(stderr=True),
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        self._began: float | None = None

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()

    def __call__(self, snap: Snapshot) -> None:
        self._live.update(render_run(snap))

    def pages(self, paging: Paging) -> None:
        """The view of ``batcher select``: jobs listed so far, of how many, and the pace."""
        now = time.monotonic()
        if self._began is None:
            self._began = now
        self._live.update(render_pages(paging, now - self._began))


def render_pages(paging: Paging, elapsed: float) -> Group:
    """The view of ``batcher select``: a bar, and the pace of the listing.

    >>> from batcher.select.paging import Paging
    >>> view = render_pages(Paging(count=3000, jobs=1000, pages=10), 2.0)
    >>> console = Console(width=100, file=io.StringIO(), color_system=None, record=True)
    >>> console.print(view); print(console.export_text().splitlines()[1])
    listed pages 10  rate 500.0 jobs/s  elapsed 2s  ETA 4s
    """
    total = paging.count
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        ProgressBar(total=total or None, completed=paging.jobs, width=40),
        Text(f"listed {paging.jobs:,}/{'?' if total is None else f'{total:,}'} jobs", "bold"),
        Text(f"{100 * paging.jobs / total:.0f}%" if total else ""),
    )
    rate = paging.jobs / elapsed if elapsed > 0 else None
    left = None if total is None else max(0, total - paging.jobs)
    eta = "-" if rate is None or left is None or rate <= 0 else format_duration(left / rate)
    pace = Text.assemble(
        ("listed pages ", "dim"), f"{paging.pages:,}",
        ("  rate ", "dim"), "-" if rate is None else f"{rate:,.1f} jobs/s",
        ("  elapsed ", "dim"), format_duration(elapsed), ("  ETA ", "dim"), eta,
    )  # fmt: skip
    if paging.not_matching:
        pace.append(f"  left out {paging.not_matching:,}", style="yellow")
    return Group(grid, pace)
