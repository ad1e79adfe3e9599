"""The README's picture of `sweep ui`: a real quickstart sweep, the page `sweep ui` prints, opened in
headless Chromium (Debian's, through Playwright) as a first-time visitor sees it.

    python docs/screenshot.py                # 12 trials, writes docs/sweep-ui.png
    python docs/screenshot.py --trials 6 --out /tmp/ui.png
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def sweep(*args: str) -> list[str]:
    return [sys.executable, "-m", "sweeps", *args]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "sweep-ui.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        folder = Path(tmp)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        subprocess.run(
            sweep("run", "quickstart", "--trials", str(args.trials)), cwd=folder, env=env, check=True
        )
        with (folder / "ui.log").open("w") as log:
            server = subprocess.Popen(
                sweep("ui", "--port", str(port)),
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            deadline = time.monotonic() + 180
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        sys.exit(f"sweep ui did not start; see {folder / 'ui.log'}")
                    time.sleep(0.5)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(url)
                page.locator(".ag-center-cols-container .ag-row").nth(min(args.trials, 10) - 1).wait_for()
                time.sleep(2)  # let the column layout settle
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(f"wrote {args.out} ({url})")


if __name__ == "__main__":
    main()
