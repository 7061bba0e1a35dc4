"""Micro-benchmarks of the per-entry pieces of a run, the working tree vs a patched copy.

    python bench/micro.py [--other /tmp/patched]

Imports ``batcher`` twice (the working tree and ``--other``) in separate subprocesses and
times, per call: the AK/SK signature of a typical request, the report-line timestamps, the
report line itself (model + JSON), and the hand-off of entries from the producer to 100
workers. Steadier than whole-run A/B figures on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, ROOT

PROBE = r"""
import json, sys, timeit
from datetime import UTC, datetime
import anyio
from multidict import CIMultiDict
from batcher.send import runner
from batcher.entry import Entry
from batcher.send import credentials
from batcher.send import signing as auth
from batcher.entry import Outcome
from batcher.journal.line import line_from_outcome
import orjson

headers = CIMultiDict({"Host": "127.0.0.1:8080", "Content-Type": "application/json;charset=UTF-8",
                       "X-Project-Id": "p1", "X-Sdk-Date": "20261124T000000Z",
                       "User-Agent": "batcher/0.1"})
path = "/v1/p1/digital-human-training-manage/user/jobs/job0000001/command"
body = b'{"command":"GET_MULTIPART_UPLOADED"}'
entry = Entry(job_id="job0000001", command="GET_MULTIPART_UPLOADED", source="m.csv:2")
now = datetime.now(UTC)
signer = auth.AkSkSigner(credentials.AkSkCredentials(ak="AK", sk="SK"))
date_now = getattr(signer, "_sdk_date", lambda: auth.sdk_date())

def sign():
    auth.authorization_header(ak="AK", sk="SK", method="POST", path=path, query=(),
                              headers=headers, body=body)

def stamps():
    runner.utc_stamp(now); runner.utc_stamp(now); date_now()

OK = Outcome(succeeded=True, http_status=200, command_result="EXCUTE_SUCCESS",
             request_id="x" * 32)

def line():
    orjson.dumps(line_from_outcome(entry, OK, run_id="r", attempts=1,
                                   started_at="2026-11-24T13:00:00.123Z",
                                   finished_at="2026-11-24T13:00:00.223Z", duration_ms=12.5))

def handoff(n=100_000, workers=100, buffer=int(sys.argv[1])):
    async def main():
        send, receive = anyio.create_memory_object_stream(buffer)
        async def worker(r):
            async with r:
                async for _ in r:
                    await anyio.lowlevel.checkpoint()
        async with anyio.create_task_group() as tg:
            async with receive:
                for _ in range(workers):
                    tg.start_soon(worker, receive.clone())
            async with send:
                for i in range(n):
                    await send.send(i)
    anyio.run(main)
    return n

out = {}
for name, fn, number in (("sign", sign, 20000), ("timestamps", stamps, 20000),
                         ("report line", line, 20000)):
    out[name] = min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6
import time
best = min((lambda t0: (handoff(), time.process_time() - t0)[1])(time.process_time())
           for _ in range(3))
out["hand-off to 100 workers"] = best / 100_000 * 1e6
print(json.dumps(out))
"""


def probe(src: Path, buffer: int) -> dict[str, float]:
    answer = subprocess.run(
        [PYTHON, "-c", PROBE, str(buffer)],
        cwd=src,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(src)},
    )
    return json.loads(answer.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", default="/tmp/patched")
    parser.add_argument(
        "--other-buffer",
        type=int,
        default=100,
        help="stream buffer the other copy uses (the tree uses 0)",
    )
    args = parser.parse_args()
    a = probe(ROOT, 0)
    b = probe(Path(args.other).resolve(), args.other_buffer)
    print(f"{'µs per call (best of 5)':32} {'working tree':>13} {args.other:>16}")
    for name in a:
        print(f"{name:32} {a[name]:13.2f} {b[name]:16.2f}  ({b[name] / a[name] - 1:+.0%})")


if __name__ == "__main__":
    main()
