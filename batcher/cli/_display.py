"""What the CLI draws on a terminal while a run goes: one progress line, redrawn in place."""

from __future__ import annotations

from typing import TextIO

from ..engine.progress import Snapshot, format_duration


def render_bar(snap: Snapshot, width: int = 24) -> str:
    """``[#####...] 50/100 ok 40 failed 8 skipped 2 | 5.0/s ETA 10s``"""
    total, done = snap.total, snap.done
    if total:
        filled = int(width * min(1.0, done / total))
        bar = "[" + "#" * filled + "." * (width - filled) + "]"
        count = f"{done}/{total}"
    else:
        bar, count = "", f"{done}"
    eta = "" if snap.eta_s is None else f" ETA {format_duration(snap.eta_s)}"
    return (
        f"{bar} {count} ok {snap.succeeded} failed {snap.failed} "
        f"skipped {snap.skipped} | {snap.rate:.1f}/s{eta}"
    ).strip()


class BarDisplay:
    """A progress bar redrawn in place on a terminal (carriage return, erase line)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._drawn = False

    def __call__(self, snap: Snapshot) -> None:
        self._stream.write("\r\x1b[2K" + render_bar(snap))
        self._stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False
