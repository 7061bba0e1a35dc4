"""A real headless browser for tests: Debian's ``chromium``, driven through the Chrome
DevTools Protocol over aiohttp's websocket client (no new dependency).

``load_page(path)`` opens a local file in a fresh profile and reports what a person's
browser would have done: console errors and uncaught exceptions, every network request,
how long the page took to load, the result of a DOM probe, and a full-page screenshot.

    >>> loaded = load_page(Path("r.html"), screenshot=Path("r.png"))  # doctest: +SKIP
    >>> loaded.errors, loaded.requests  # doctest: +SKIP
    ([], ['file:///.../r.html'])
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,900",
)

#: What the page shows, asked of the rendered DOM once it has loaded.
PROBE = """(() => {
  const canvases = [...document.querySelectorAll('.uplot canvas')].map(c => {
    const g = c.getContext('2d');
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let inked = 0;
    for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) inked++; }
    return {width: c.width, height: c.height, inked};
  });
  return {
    charts: document.documentElement.getAttribute('data-charts'),
    uplots: document.querySelectorAll('.uplot').length,
    canvases,
    svgs: document.querySelectorAll('svg').length,
    tables: document.querySelectorAll('table').length,
    title: document.title,
    text: document.body.innerText,
    html: document.documentElement.outerHTML.length,
  };
})()"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageLoad:
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    load_ms: float = 0.0
    probe: dict[str, Any] = field(default_factory=dict)
    png: bytes = b""


class _Cdp:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            future = self.pending.pop(data["id"], None) if "id" in data else None
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                await self.events.put(data)

    async def send(self, method: str, session: str | None = None, **params: Any) -> Any:
        message_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[message_id] = future
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self.ws.send_str(json.dumps(message))
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})


def _read_port_file(port_file: str) -> str | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        with open(port_file) as stream:
            port, path = stream.read().split()[:2]
        return f"ws://127.0.0.1:{int(port)}{path}"
    return None


async def _devtools_url(profile: str, process: asyncio.subprocess.Process) -> str:
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        found = _read_port_file(port_file)
        if found:
            return found
        await asyncio.sleep(0.05)
    raise RuntimeError("chromium did not open its DevTools port")


async def load_page_async(url: str, *, screenshot: bool = False) -> PageLoad:
    """Open ``url`` (a ``file://`` URL) in a fresh headless chromium; report what happened."""
    binary = find_chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed")
    result = PageLoad()
    # Chromium's helper processes can outlive the browser for a moment and still write to
    # the profile: they share its process group, which is killed whole at the end.
    with tempfile.TemporaryDirectory(
        prefix="batcher-chromium-", ignore_cleanup_errors=True
    ) as profile:
        process = await asyncio.create_subprocess_exec(
            binary, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}",
            "about:blank",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            ws_url = await _devtools_url(Path(profile), process)
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(ws_url, max_msg_size=0) as ws,
            ):
                cdp = _Cdp(ws)
                target = await cdp.send("Target.createTarget", url="about:blank")
                attached = await cdp.send(
                    "Target.attachToTarget", targetId=target["targetId"], flatten=True
                )
                session = attached["sessionId"]
                for domain in ("Runtime", "Log", "Network", "Page"):
                    await cdp.send(f"{domain}.enable", session)
                started = time.monotonic()
                await cdp.send("Page.navigate", session, url=url)
                while True:
                    event = await asyncio.wait_for(cdp.events.get(), 60)
                    _note(event, result)
                    if event["method"] == "Page.loadEventFired":
                        result.load_ms = (time.monotonic() - started) * 1000
                        break
                await asyncio.sleep(0.3)  # anything the page does after load
                while not cdp.events.empty():
                    _note(cdp.events.get_nowait(), result)
                probe = await cdp.send(
                    "Runtime.evaluate", session, expression=PROBE, returnByValue=True
                )
                result.probe = probe["result"].get("value") or {}
                if screenshot:
                    metrics = await cdp.send("Page.getLayoutMetrics", session)
                    size = metrics["cssContentSize"]
                    shot = await cdp.send(
                        "Page.captureScreenshot",
                        session,
                        format="png",
                        captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": size["width"],
                              "height": min(size["height"], 12000), "scale": 1},
                    )  # fmt: skip
                    result.png = base64.b64decode(shot["data"])
                while not cdp.events.empty():
                    _note(cdp.events.get_nowait(), result)
                with contextlib.suppress(Exception):
                    await cdp.send("Browser.close")
                cdp.reader.cancel()
        finally:
            if process.returncode is None:
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    return result


def _note(event: dict[str, Any], result: PageLoad) -> None:
    method, params = event["method"], event.get("params", {})
    if method == "Network.requestWillBeSent":
        result.requests.append(params["request"]["url"])
    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        texts = [str(arg.get("value", arg.get("description", ""))) for arg in params["args"]]
        result.errors.append("console: " + " ".join(texts))
    elif method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        result.errors.append(
            "exception: " + str(details.get("exception", {}).get("description", details))
        )
    elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
        result.errors.append(f"log: {params['entry'].get('text')}")


def load_page(page: Path, *, screenshot: Path | None = None) -> PageLoad:
    """:func:`load_page_async` for a file, outside an event loop; the screenshot (PNG) is
    saved at ``screenshot`` when given."""
    loaded = asyncio.run(load_page_async(page.resolve().as_uri(), screenshot=bool(screenshot)))
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(loaded.png)
    return loaded


def artifact_dir() -> Path:
    """Where tests keep what a person may want to look at: ``$BATCHER_TEST_ARTIFACTS``, or
    the system's temporary directory."""
    return Path(os.environ.get("BATCHER_TEST_ARTIFACTS") or tempfile.gettempdir())
