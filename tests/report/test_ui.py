"""`sweep ui` as a user meets it: the page it prints, opened in a real browser on a real store.

The page must open in the model-training view on the sweep's trials, flat and best first, with
the searched params and the objective in view; the chart view holds the sweep's charts; the
parent run's page shows the sweep's summary; the best trial's run shows its logged model.
Screenshots are kept under the pytest temp dir (`screenshots/`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from sweeps.spec.schema import load_spec
from tests.conftest import ROOT, sweep_cli
from tests.report.chromium import browser, in_view, requires_chromium
from tests.report.conftest import SPEC, SWEEP, Swept
from tracking import tags
from tracking.dashboard import run_url, trials_url
from tracking.query import trial_runs

# The optimizer first, then the order of the spec file the fixture writes (keys sorted).
SEARCHED = sorted(SPEC["space"], key=lambda name: (name != "optimizer", name))
OBJECTIVE = "best_val_accuracy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as reply:
        text = reply.read().decode()
    return json.loads(text) if text.startswith("{") else text


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """`sweep ARGS` in its own process group, as a user starts it from a shell. Its server's log
    goes to a file (a pipe nobody reads would fill and stall the server)."""
    with (cwd / f"sweep-{args[0]}-{time.monotonic_ns()}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "sweeps", *args],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )


def printed_url(process: subprocess.Popen[str]) -> str:
    """The first line the command prints: the page to open."""
    assert process.stdout is not None
    return process.stdout.readline().strip()


def wait_until_serving(url: str, process: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            request(url)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"nothing answered on {url} within {timeout} s")


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM to `sweep ui` alone (as `kill` or a service manager sends it): the server it
    started must go with it, leaving no process of its group behind."""
    process.terminate()
    process.wait(timeout=60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("processes of `sweep ui` outlived it")


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


IN_ORDER_JS = """ids => {
  const xs = ids.map(id => document.querySelector(`.ag-header-cell[col-id="${id}"]`));
  return xs.every(Boolean) && xs.every((el, i) => i === 0 ||
    xs[i - 1].getBoundingClientRect().left < el.getBoundingClientRect().left);
}"""


def _row_cells(page: Any, column: str) -> dict[int, Any]:
    """The visible rows' cells of one column, by row index (top row first)."""
    cells = page.locator(f".ag-row .ag-cell[col-id='{column}']")
    return {int(c.locator("xpath=..").get_attribute("row-index")): c for c in cells.all()}


@requires_chromium
def test_ui_opens_on_the_trials_best_first(swept: Swept, screenshots: Path) -> None:
    client = MlflowClient(swept.uri)
    runs = {run.info.run_name: run for run in trial_runs(client, SWEEP)}
    port = free_port()
    process = start("ui", SWEEP, "--tracking-uri", swept.uri, "--port", str(port), cwd=swept.folder)
    try:
        url = printed_url(process)
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/#/experiments/\d+/runs\?\S+", url), url
        assert "workflowType=machine_learning" in url and "viewStateShareKey=" in url
        wait_until_serving(f"http://127.0.0.1:{port}/health", process)
        # A tracking server's page is printed the same way, without starting anything.
        served = sweep_cli("ui", SWEEP, "--tracking-uri", f"http://127.0.0.1:{port}", cwd=swept.folder)
        assert served.returncode == 0, served.stderr
        assert served.stdout.strip() == url
        # Without a name: the sweep whose parent run ended last (other tests here run more sweeps).
        parents = client.search_runs(
            [e.experiment_id for e in client.search_experiments()], f"tags.`{tags.ROLE}` = 'sweep'"
        )
        latest = max(parents, key=lambda run: run.info.end_time).info.experiment_id
        served = sweep_cli("ui", "--tracking-uri", f"http://127.0.0.1:{port}", cwd=swept.folder)
        assert served.stdout.strip() == trials_url(f"http://127.0.0.1:{port}", latest), served.stderr

        with browser() as browsed:
            page = browsed.page
            page.goto(url)
            page.locator(".ag-center-cols-container .ag-row").nth(len(runs) - 1).wait_for()
            # The columns in the spec's order: the objective, then the searched params.
            assert load_spec(str(swept.folder / "tiny.yaml")).space.searched == SEARCHED
            order = [f"metrics.`{OBJECTIVE}`", *(f"params.`{p}`" for p in SEARCHED)]
            page.wait_for_function(IN_ORDER_JS, arg=order)
            assert page.get_by_text("Token Usage").count() == 0  # not the GenAI overview
            assert page.get_by_text("Error loading shared view state").count() == 0
            names = {
                i: cell.get_by_role("link") for i, cell in _row_cells(page, "attributes.`Run Name`").items()
            }
            values = _row_cells(page, f"metrics.`{OBJECTIVE}`")
            assert sorted(names) == list(range(len(runs)))  # trials only, flat: the parent is not listed
            shown = [(names[i].inner_text().strip(), float(values[i].inner_text())) for i in sorted(names)]
            assert {name for name, _ in shown} == set(runs)
            for name, value in shown:  # each row shows its own run's value, best first
                assert value == pytest.approx(runs[name].data.metrics[OBJECTIVE])
            assert [v for _, v in shown] == sorted((v for _, v in shown), reverse=True)
            for param in SEARCHED:
                cells = _row_cells(page, f"params.`{param}`")
                for i, (name, _) in enumerate(shown):
                    assert cells[i].inner_text().strip() == runs[name].data.params[param]
                    assert in_view(page, cells[i]), f"{param} of {name} is not in view"
                assert in_view(page, f".ag-header-cell[col-id='params.`{param}`']")
            for i in names:
                assert in_view(page, names[i]) and in_view(page, values[i])
            page.screenshot(path=str(screenshots / "trials.png"))

            # The chart view is ready: the objective against the learning rate, parallel coordinates.
            page.locator("label:has(input[name='runs-view-mode'][value='CHART'])").click()  # the toggle
            page.get_by_text(f"learning_rate vs. {OBJECTIVE}", exact=True).wait_for()
            parallel = page.locator("[data-testid='experiment-view-compare-runs-card']").filter(
                has_text="Parallel Coordinates"
            )
            for axis in SEARCHED:
                parallel.locator("svg text").filter(has_text=re.compile(rf"^{axis}$")).first.wait_for()
            page.screenshot(path=str(screenshots / "charts.png"))

            # The parent run's page: the sweep's summary is its description.
            experiment = client.get_experiment_by_name(SWEEP)
            (parent,) = client.search_runs([experiment.experiment_id], f"tags.`{tags.ROLE}` = 'sweep'")
            page.goto(run_url(url.split("/#/")[0], experiment.experiment_id, parent.info.run_id))
            summary = page.get_by_text(re.compile(rf"^Sweep {SWEEP}: finished$"))
            summary.scroll_into_view_if_needed()  # the description is below the run's tags
            best_name, best_value = shown[0]
            best_line = page.get_by_text(f"Best: val_accuracy = {best_value:.4f}")
            assert in_view(page, summary) and in_view(page, best_line)  # before its "Show more"
            assert page.get_by_text("5 of 5 trials (5 complete)").is_visible()
            page.screenshot(path=str(screenshots / "sweep-run.png"))
            page.get_by_text("Show more").click()
            assert page.get_by_role("heading", name="Optimizers").is_visible()

            # Its link to the best trial opens that run (in a new tab, as the UI opens description
            # links), in the model-training view, and the run lists the best model.
            best_run = runs[best_name]
            with page.context.expect_page() as opened:
                page.get_by_role("link", name=f"trial {best_run.data.tags[tags.TRIAL]}", exact=True).click()
            page = opened.value
            page.set_default_timeout(60_000)
            page.wait_for_url(re.compile(rf"/runs/{best_run.info.run_id}\?workflowType=machine_learning$"))
            page.get_by_role("heading", name=best_name).wait_for()
            page.get_by_role("link", name="best_model").first.wait_for()  # its logged models load last
            page.screenshot(path=str(screenshots / "best-trial.png"))
            # The experiment's Models tab shows it too, from the best trial's run.
            page.goto(url.split("/runs?")[0] + "/models?workflowType=machine_learning")
            page.locator(".ag-row").get_by_text("best_model", exact=True).wait_for()
            page.locator(".ag-row").get_by_role(
                "link", name=best_name, exact=True
            ).wait_for()  # its source run
            page.screenshot(path=str(screenshots / "models.png"))
    finally:
        stop(process)


@requires_chromium
def test_ui_optuna_opens_the_study_with_its_objective_named(swept: Swept, screenshots: Path) -> None:
    port = free_port()
    process = start(
        "ui", SWEEP, "--optuna", "--tracking-uri", swept.uri, "--port", str(port), cwd=swept.folder
    )
    try:
        url = printed_url(process)
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/dashboard/studies/\d+", url), url
        study_id = url.rsplit("/", 1)[1]
        wait_until_serving(f"http://127.0.0.1:{port}/api/studies/{study_id}", process)
        study = request(f"http://127.0.0.1:{port}/api/studies/{study_id}")
        assert study["name"] == SWEEP and study["objective_names"] == ["val_accuracy"]
        assert len(study["trials"]) == 5
        with browser() as browsed:
            browsed.page.goto(url)
            browsed.page.get_by_text("val_accuracy").first.wait_for()
            assert browsed.page.get_by_text("Objective 0").count() == 0
            browsed.page.screenshot(path=str(screenshots / "optuna-dashboard.png"))
    finally:
        stop(process)


def test_ui_optuna_without_the_dashboard_says_how_to_install_it(swept: Swept) -> None:
    """optuna-dashboard absent: one line naming the extra, exit 2 (the import is made to fail)."""
    code = (
        "import sys; sys.modules['optuna_dashboard'] = None; from sweeps.cli.app import main; "
        f"sys.argv = ['sweep', 'ui', '{SWEEP}', '--optuna', '--tracking-uri', '{swept.uri}']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=swept.folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --optuna needs optuna-dashboard: pip install 'sweeplab[dashboard]'"


def test_ui_looks_for_the_study_where_the_engine_keeps_it() -> None:
    from sweeps.cli import ui
    from sweeps.engines import optuna_engine

    assert ui.JOURNAL_FILE == optuna_engine.JOURNAL_FILE


def test_ui_names_an_unknown_sweep(swept: Swept) -> None:
    done = sweep_cli("ui", "no-such-sweep", "--tracking-uri", swept.uri, cwd=swept.folder)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: no sweep named 'no-such-sweep' in {swept.uri} (`sweep list` shows the sweeps there)"
    ]
