"""Open a page in a real headless Chromium over the DevTools protocol, as a user's browser would:
what its images decoded to, what it logged as errors, and a full-page screenshot."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1200,900",
)
IMAGES_JS = (
    "JSON.stringify(Array.from(document.images, i => "
    "({alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})))"
)


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    return found or (CHROMIUM if Path(CHROMIUM).exists() else None)


@dataclass
class PageCheck:
    images: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    title: str = ""


def _error_of(event: dict[str, Any]) -> str | None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        return f"exception: {params['exceptionDetails'].get('text')}"
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return "console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
    if method == "Log.entryAdded" and params["entry"].get("level") == "error":
        return f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}"
    return None


async def _drive(ws_url: str, page_url: str, screenshot: Path, timeout: float) -> PageCheck:
    import aiohttp

    ids = itertools.count(1)
    errors: list[str] = []
    loaded = asyncio.Event()
    pending: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:

        async def reader() -> None:
            async for message in ws:
                data = json.loads(message.data)
                if "id" in data and data["id"] in pending:
                    pending.pop(data["id"]).set_result(data)
                elif data.get("method") == "Page.loadEventFired":
                    loaded.set()
                elif (error := _error_of(data)) is not None:
                    errors.append(error)

        async def call(method: str, **params: Any) -> dict[str, Any]:
            number = next(ids)
            pending[number] = asyncio.get_running_loop().create_future()
            await ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
            reply = await asyncio.wait_for(pending[number], timeout)
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply.get("result", {})

        task = asyncio.create_task(reader())
        for domain in ("Page", "Runtime", "Log"):
            await call(f"{domain}.enable")
        await call("Page.navigate", url=page_url)
        await asyncio.wait_for(loaded.wait(), timeout)
        images = json.loads(
            (await call("Runtime.evaluate", expression=IMAGES_JS, returnByValue=True))["result"]["value"]
        )
        title = (await call("Runtime.evaluate", expression="document.title", returnByValue=True))["result"][
            "value"
        ]
        size = (await call("Page.getLayoutMetrics"))["cssContentSize"]
        shot = await call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        await asyncio.sleep(0.2)  # let late console messages arrive
        task.cancel()
    return PageCheck(images, errors, title)


def _devtools_port(profile: Path, process: subprocess.Popen[bytes], timeout: float) -> int:
    """Chromium writes the port it chose (--remote-debugging-port=0) to DevToolsActivePort."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().splitlines()[0])
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


def _page_target(port: int, timeout: float) -> str:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as reply:
            pages = [t for t in json.load(reply) if t.get("type") == "page"]
        if pages:
            return str(pages[0]["webSocketDebuggerUrl"])
        if time.monotonic() > deadline:
            raise TimeoutError("chromium opened no page")
        time.sleep(0.1)


def check_page(page: Path, screenshot: Path, timeout: float = 60) -> PageCheck:
    """Load `page` in headless Chromium; return its images and errors, and save a screenshot."""
    binary = chromium_path()
    assert binary is not None, "chromium is not installed"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = _devtools_port(Path(profile), process, timeout)
            target = _page_target(port, timeout)
            return asyncio.run(_drive(target, page.resolve().as_uri(), screenshot, timeout))
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
