"""The reference: a bare aiohttp loop doing what batcher does on the wire, and nothing else.

    python bench/bare_loop.py URL MANIFEST.csv [--concurrency 100] [--check]

Reads the same CSV manifest (the csv module, no validation), and with ``--concurrency``
workers in flight POSTs each entry's command, AK/SK-signed (SDK-HMAC-SHA256, written here
from the cloud's documented scheme, not batcher's signer), reads the JSON answer and counts
the successes. No retries, no rate limit, no report. ``--check`` also verifies the
signature scheme against ``batcher.send.signing`` once, to be sure the reference signs
for real. Prints one JSON line: counts and timings.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import aiohttp  # noqa: E402

AK = "BENCHAK0000000000001"
SK = "bench-secret-key-00000000000000000001"
PROJECT = "p1"
PATH = "/v1/{project}/digital-human-training-manage/user/jobs/{job}/command"


def sign(host: str, path: str, body: bytes, date: str) -> dict[str, str]:
    """The headers of an SDK-HMAC-SHA256 request (no query string, JSON body)."""
    headers = {
        "content-type": "application/json",
        "host": host,
        "x-project-id": PROJECT,
        "x-sdk-date": date,
    }
    names = sorted(headers)
    canonical = "\n".join(
        [
            "POST",
            path if path.endswith("/") else path + "/",
            "",
            "".join(f"{name}:{headers[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = f"SDK-HMAC-SHA256\n{date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(SK.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Project-Id": PROJECT,
        "X-Sdk-Date": date,
        "Authorization": f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={';'.join(names)}, "
        f"Signature={signature}",
    }


async def run(url: str, manifest: str, concurrency: int) -> dict[str, int]:
    host = urlsplit(url).netloc
    counts = {"ok": 0, "other": 0}
    with open(manifest, encoding="utf-8", newline="") as stream:  # noqa: ASYNC230
        rows = csv.DictReader(stream)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                for row in rows:
                    path = PATH.format(project=PROJECT, job=row["job_id"])
                    body = json.dumps({"command": row["command"]}).encode()
                    date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                    headers = sign(host, path, body, date)
                    async with session.post(url + path, data=body, headers=headers) as answer:
                        payload = json.loads(await answer.read())
                    ok = answer.status == 200 and payload.get("commond_result") == "EXCUTE_SUCCESS"
                    counts["ok" if ok else "other"] += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def check() -> None:
    """The reference's signature matches batcher's signer byte for byte."""
    from batcher.send.signing import authorization_header

    host, path, body, date = "127.0.0.1:8080", PATH.format(project=PROJECT, job="j1"), b"{}", ""
    date = "20261124T000000Z"
    ours = sign(host, path, body, date)
    headers = {k: v for k, v in ours.items() if k != "Authorization"} | {"Host": host}
    theirs = authorization_header(
        ak=AK, sk=SK, method="POST", path=path, query=(), headers=headers, body=body
    )
    assert ours["Authorization"] == theirs, (ours["Authorization"], theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("manifest")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--check", action="store_true", help="verify the signer first")
    args = parser.parse_args()
    if args.check:
        check()
    started = time.perf_counter()
    counts = asyncio.run(run(args.url, args.manifest, args.concurrency))
    done = time.perf_counter()
    print(
        json.dumps(
            {
                **counts,
                "startup_s": round(started - T0, 3),
                "loop_s": round(done - started, 3),
            }
        )
    )
    if counts["other"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
