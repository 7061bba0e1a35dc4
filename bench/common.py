"""Shared helpers for the benchmarks: manifests, servers in their own process, and
measuring a child process (wall time, user+sys CPU, peak RSS) with ``os.wait4``.

Nothing here is imported by batcher or its tests; the scripts are run by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
COMMAND = "GET_MULTIPART_UPLOADED"  # answered 200 by the simulator, never changes state
PROJECT = "p1"
AK = "BENCHAK0000000000001"
SK = "bench-secret-key-00000000000000000001"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- manifests


def make_csv(path: Path, n: int, *, command: str = COMMAND, prefix: str = "job") -> Path:
    """Write a CSV manifest of ``n`` distinct jobs (``job0000001``...), all ``command``."""
    width = max(7, len(str(n)))
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("job_id,command\n")
        chunk: list[str] = []
        for i in range(1, n + 1):
            chunk.append(f"{prefix}{i:0{width}d},{command}\n")
            if len(chunk) >= 10_000:
                out.writelines(chunk)
                chunk.clear()
        out.writelines(chunk)
    return path


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="batcher-bench-") as tmp:
        yield Path(tmp)


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    kind: str
    url: str
    proc: subprocess.Popen[str]

    def cpu_seconds(self) -> float:
        """user+sys CPU the server process has used so far (from /proc)."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def arrivals(self) -> list[float]:
        """Server-side arrival times (null server only)."""
        with urllib.request.urlopen(self.url + "/__bench/arrivals", timeout=30) as answer:
            return json.loads(answer.read())

    def first_arrival(self) -> float | None:
        """The first request's arrival time (null server only), or None before any."""
        with urllib.request.urlopen(self.url + "/__bench/first", timeout=30) as answer:
            return json.loads(answer.read())

    def reset(self) -> None:
        if self.kind == "null":
            request = urllib.request.Request(self.url + "/__bench/reset", method="POST", data=b"")
            urllib.request.urlopen(request, timeout=30).read()

    def stats(self) -> dict:
        """The simulator's own counters (simulator only)."""
        with urllib.request.urlopen(self.url + "/__simulator/stats", timeout=30) as answer:
            return json.loads(answer.read())


@contextlib.contextmanager
def server(
    kind: str = "null", *, latency_ms: float = 0.0, extra: Sequence[str] = ()
) -> Iterator[Server]:
    """Start the null server or ``batcher simulate`` in its own process; yield its URL.

    ``extra`` goes to the simulator's command line (e.g. ``["--quota", "20"]``). Both
    print ``listening on http://HOST:PORT`` as their first stdout line. The simulator
    gets an environment without credentials, so it accepts any well-formed AK/SK
    signature.
    """
    if kind == "null":
        cmd = [
            PYTHON,
            str(BENCH / "null_server.py"),
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
        ]
    elif kind == "sim":
        cmd = [
            PYTHON,
            "-m",
            "batcher",
            "simulate",
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
            "--seed",
            "1",
            "--log-level",
            "warning",
            "--log-format",
            "json",
            *extra,
        ]
    else:
        raise ValueError(kind)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HUAWEICLOUD_SDK_", "CLOUD_SDK_", "METASTUDIO_"))
    }
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("listening on "):
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        yield Server(kind, line.split("listening on ", 1)[1].strip(), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- measuring


@dataclass
class Measured:
    wall: float  # seconds, process start to exit
    user: float
    sys: float
    maxrss_mb: float  # peak resident set of the child
    rc: int
    stdout: str = ""
    stderr: str = ""

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def measure(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT, capture: bool = True
) -> Measured:
    """Run ``cmd`` and return its wall time and its own rusage (``os.wait4``)."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env,
            stdout=so if out is subprocess.PIPE else out,
            stderr=se if out is subprocess.PIPE else out,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        texts = []
        for handle in (so, se):
            handle.seek(0)
            texts.append(handle.read().decode(errors="replace"))
    return Measured(
        wall=wall,
        user=usage.ru_utime,
        sys=usage.ru_stime,
        maxrss_mb=usage.ru_maxrss / 1024,
        rc=proc.returncode,
        stdout=texts[0],
        stderr=texts[1],
    )


#: Where ``python -m batcher`` is imported from: the working tree by default, or another copy
#: of the package (``--src DIR`` / $BATCHER_BENCH_SRC) to compare a patched version.
SRC = Path(os.environ.get("BATCHER_BENCH_SRC") or ROOT)


def set_src(path: str | Path | None) -> None:
    global SRC
    if path:
        SRC = Path(path).resolve()
        os.environ["BATCHER_BENCH_SRC"] = str(SRC)


def batcher_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HUAWEICLOUD_SDK_AK=AK, HUAWEICLOUD_SDK_SK=SK)
    env.pop("METASTUDIO_AUTH_TOKEN", None)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def measure_batcher(args: Sequence[str], *, src: Path | None = None) -> Measured:
    """``python -m batcher ARGS`` from :data:`SRC` (or ``src``), with throwaway AK/SK."""
    global SRC
    saved = SRC
    SRC = src or SRC
    try:
        return measure([PYTHON, "-m", "batcher", *args], env=batcher_env(), cwd=SRC)
    finally:
        SRC = saved


def loadavg() -> float:
    return os.getloadavg()[0]


def batcher_run_args(
    manifest: Path,
    report: Path,
    url: str,
    *,
    rate: float = 0,
    concurrency: int = 100,
    extra: Sequence[str] = (),
) -> list[str]:
    return [
        "run",
        str(manifest),
        "--report",
        str(report),
        "--endpoint",
        url,
        "--project-id",
        PROJECT,
        "--rate",
        f"{rate:g}",
        "--concurrency",
        str(concurrency),
        "--no-progress",
        "--log-format",
        "json",
        "--quiet",
        *extra,
    ]


def sdk_cmd(mode: str, url: str, n: int, *, threads: int = 0, window: int = 0) -> list[str]:
    cmd = [PYTHON, str(BENCH / "sdk_client.py"), mode, url, str(n)]
    if threads:
        cmd += ["--threads", str(threads)]
    if window:
        cmd += ["--window", str(window)]
    return cmd


def count_report_lines(report: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open(report, "rb") as lines:
        for raw in lines:
            status = json.loads(raw)["status"]
            counts[status] = counts.get(status, 0) + 1
    return counts


# --------------------------------------------------------------------------- numbers


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The largest number of arrivals in any half-open window [t, t + window)."""
    ordered = sorted(times)
    best = lo = 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def save(name: str, data: object) -> Path:
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=lambda o: asdict(o)) + "\n")
    return path


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
