"""A minimal Chrome DevTools Protocol client over aiohttp websockets, to test report.html in a real browser.

Starts headless Chromium with `--remote-debugging-port=0`, reads the browser websocket from its stderr
(`DevTools listening on ws://…`), opens a page target in flattened-session mode, and records what a test
needs to judge the page: uncaught exceptions, console errors, log errors, and every network request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class CDPError(RuntimeError):
    pass


def find_chromium() -> str | None:
    """`IDGRAPH_CHROMIUM` if set, else the first Chromium-family browser on PATH (Debian: `chromium`)."""
    explicit = os.environ.get("IDGRAPH_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


class Browser:
    """One headless Chromium process and one websocket to it. Use `async with Browser(path) as browser:`."""

    def __init__(self, executable: str, *, timeout: float = 30.0) -> None:
        self.executable = executable
        self.timeout = timeout
        self.stderr_lines: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._profile: str | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Browser:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._profile = tempfile.mkdtemp(prefix="idgraph-chromium-")
        self._proc = await asyncio.create_subprocess_exec(
            self.executable,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={self._profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: close() ends the browser and its children only
        )
        ws_url = await asyncio.wait_for(self._read_ws_url(), self.timeout)
        self._tasks.append(asyncio.create_task(self._drain_stderr()))
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(
            ws_url, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=5)
        )
        self._tasks.append(asyncio.create_task(self._read_messages()))

    async def _read_ws_url(self) -> str:
        assert self._proc is not None and self._proc.stderr is not None
        while True:
            raw = await self._proc.stderr.readline()
            if not raw:
                tail = "\n".join(self.stderr_lines[-20:])
                raise CDPError(f"chromium exited before DevTools was listening:\n{tail}")
            line = raw.decode(errors="replace").rstrip()
            self.stderr_lines.append(line)
            match = _LISTENING.search(line)
            if match:
                return match.group(1)

    async def _drain_stderr(self) -> None:
        """Keep reading stderr so Chromium never blocks on a full pipe."""
        assert self._proc is not None and self._proc.stderr is not None
        while raw := await self._proc.stderr.readline():
            self.stderr_lines.append(raw.decode(errors="replace").rstrip())
            del self.stderr_lines[:-500]

    async def _read_messages(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = msg.json()
                if "id" in data:
                    future = self._pending.pop(data["id"], None)
                    if future is not None and not future.done():
                        future.set_result(data)
                elif "method" in data:
                    page = self._pages.get(data.get("sessionId", ""))
                    if page is not None:
                        page._dispatch(data["method"], data.get("params", {}))
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CDPError("the DevTools connection closed"))
            self._pending.clear()

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> Any:
        if self._ws is None or self._ws.closed:
            raise CDPError("not connected")
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._ws.send_json(message)
        reply = await asyncio.wait_for(future, self.timeout)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def new_page(self) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        self._pages[page.session_id] = page
        await page.enable()
        return page

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self.send("Browser.close")
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None


class Page:
    """One attached page target with Runtime, Log, Network and Page enabled, recording what went wrong."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id
        self.exceptions: list[str] = []
        self.console_errors: list[str] = []
        self.log_errors: list[str] = []
        self.requests: list[str] = []
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {}

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.browser.send(method, params, self.session_id)

    async def enable(self) -> None:
        for domain in ("Runtime", "Log", "Network", "Page"):
            await self.send(f"{domain}.enable")

    def _dispatch(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text", "")
            self.exceptions.append(str(description))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            self.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                self.log_errors.append(
                    f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip()
                )
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url", ""))
        for listener in self._listeners.get(method, []):
            listener(params)
        for waiter in [w for w in self._waiters if w[0] == method]:
            self._waiters.remove(waiter)
            if not waiter[1].done():
                waiter[1].set_result(params)

    def expect(self, method: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the next `method` event; create it before the action that causes the event."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, future))
        return future

    @property
    def errors(self) -> list[str]:
        return [*self.exceptions, *self.console_errors, *self.log_errors]

    @property
    def external_requests(self) -> list[str]:
        """Requests for anything but local files and inline data: a self-contained page makes none."""
        return [url for url in self.requests if not url.startswith(("file://", "data:"))]

    async def goto(self, url: str) -> None:
        loaded = self.expect("Page.loadEventFired")
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"navigation to {url} failed: {result['errorText']}")
        await asyncio.wait_for(loaded, self.browser.timeout)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"evaluate failed: {text}")
        return result.get("result", {}).get("value")

    async def screenshot(
        self, path: Path | str, *, width: int = 1280, max_height: int | None = None, scale: float = 1
    ) -> Path:
        """Full-page PNG at `width` CSS pixels (cut at `max_height` when given)."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": scale, "mobile": False},
        )
        metrics = await self.send("Page.getLayoutMetrics")
        height = metrics.get("cssContentSize", metrics.get("contentSize", {})).get("height", 900)
        if max_height is not None:
            height = min(height, max_height)
        shot = await self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
