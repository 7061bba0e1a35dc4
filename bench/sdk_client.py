"""The official SDK as a user would drive it, for comparison with batcher.

    python bench/sdk_client.py sync  URL N            # a plain loop, one call after another
    python bench/sdk_client.py async URL N [--threads T] [--window W]

``async`` uses ``MetaStudioAsyncClient``: ``execute2d_model_training_command_by_user_async``
returns a future (signing and the HTTP call run on the client's ThreadPoolExecutor); we keep
``W`` futures in flight (default 4 x threads) and collect them in order with ``.result()``.
The SDK hard-codes ``ThreadPoolExecutor(max_workers=8)`` in ``HttpClient``; ``--threads T``
replaces it with a pool of ``T`` threads (and sizes the urllib3 pool to match) so the SDK
gets the same concurrency as ``batcher --concurrency``. Every call sends
GET_MULTIPART_UPLOADED for a distinct job id. Prints one JSON line: counts and timings.
"""

from __future__ import annotations

import argparse
import collections
import json
import time

T0 = time.perf_counter()

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from huaweicloudsdkcore.auth.credentials import BasicCredentials  # noqa: E402
from huaweicloudsdkcore.http.http_config import HttpConfig  # noqa: E402
from huaweicloudsdkmetastudio.v1 import (  # noqa: E402
    Execute2dModelTrainingCommandByUserReq,
    Execute2dModelTrainingCommandByUserRequest,
    MetaStudioAsyncClient,
    MetaStudioClient,
)

AK = "BENCHAK0000000000001"
SK = "bench-secret-key-00000000000000000001"
PROJECT = "p1"
COMMAND = "GET_MULTIPART_UPLOADED"


def request(i: int) -> Execute2dModelTrainingCommandByUserRequest:
    return Execute2dModelTrainingCommandByUserRequest(
        job_id=f"job{i:07d}", body=Execute2dModelTrainingCommandByUserReq(command=COMMAND)
    )


def build(kind: type, url: str, threads: int) -> object:
    config = HttpConfig.get_default_config()
    config.retry_times = 0
    if threads:
        config.pool_connections = 1
        config.pool_maxsize = threads
    client = (
        kind.new_builder()
        .with_credentials(BasicCredentials(AK, SK, PROJECT))
        .with_http_config(config)
        .with_endpoints([url])
        .build()
    )
    if threads:
        http = client.get_http_client()
        http._executor.shutdown(wait=False)
        http._executor = ThreadPoolExecutor(max_workers=threads)
    return client


def run_sync(url: str, n: int) -> int:
    client = build(MetaStudioClient, url, 0)
    ok = 0
    for i in range(1, n + 1):
        response = client.execute2d_model_training_command_by_user(request(i))
        ok += response.commond_result == "EXCUTE_SUCCESS"
    return ok


def run_async(url: str, n: int, threads: int, window: int) -> int:
    client = build(MetaStudioAsyncClient, url, threads)
    ok = 0
    pending: collections.deque = collections.deque()
    for i in range(1, n + 1):
        pending.append(client.execute2d_model_training_command_by_user_async(request(i)))
        if len(pending) >= window:
            ok += pending.popleft().result().commond_result == "EXCUTE_SUCCESS"
    while pending:
        ok += pending.popleft().result().commond_result == "EXCUTE_SUCCESS"
    client.get_http_client().executor.shutdown(wait=True)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("sync", "async"))
    parser.add_argument("url")
    parser.add_argument("n", type=int)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="async: replace the SDK's 8-thread executor with T threads",
    )
    parser.add_argument(
        "--window", type=int, default=0, help="async: futures in flight (default 4 x threads)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if args.mode == "sync":
        ok = run_sync(args.url, args.n)
    else:
        threads = args.threads or 8
        ok = run_async(args.url, args.n, args.threads, args.window or 4 * threads)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "mode": args.mode,
                "n": args.n,
                "ok": ok,
                "threads": args.threads or 8,
                "startup_s": round(started - T0, 3),
                "loop_s": round(done - started, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
