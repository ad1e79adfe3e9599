"""The HTML report as a colleague opens it: a real headless Chromium, offline."""

from __future__ import annotations

import json

from tests.report.chromium import check_page, requires_chromium
from tests.report.conftest import Reported


@requires_chromium
def test_html_report_renders_every_plot_without_errors(reported: Reported) -> None:
    screenshot = reported.folder / "screenshot.png"
    page = check_page(reported.folder / "report.html", screenshot)
    plots = json.loads((reported.folder / "report.json").read_text())["plots"]
    assert page.errors == []
    assert len(page.images) == len(plots) >= 6
    for image in page.images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    assert page.title == "Sweep tiny-report: best-config report"
    shot = screenshot.read_bytes()
    assert shot.startswith(b"\x89PNG") and len(shot) > 50_000


def test_html_report_is_self_contained(reported: Reported) -> None:
    html = (reported.folder / "report.html").read_text()
    assert "<script" not in html and 'src="data:image/png;base64,' in html
    assert "http://" not in html.replace("http://127.0.0.1:5000/#/experiments/", "")
