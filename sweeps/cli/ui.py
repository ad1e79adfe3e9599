"""`sweep ui` (registered on `sweeps.cli.app`): the MLflow UI on a sweep's trials, or Optuna's
dashboard of its study.

For a database store it serves the UI (`mlflow ui` in a child process) and prints the page of
the sweep's trials; for a tracking server (`--tracking-uri http://...`) it prints that page on
the server. `--open` also opens it in the browser. Heavy imports wait for the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

from sweeps.cli.common import Storage, TrackingUri, existing_store, fail, no_store, quiet_libraries

HEALTH_TIMEOUT_S = 120  # how long `--open` waits for a starting server before giving up
DASHBOARD_PORT = 8080
JOURNAL_FILE = "optuna.journal"  # the engine's default study file; its module would import Keras


def ui(
    name: Annotated[
        str | None, typer.Argument(help="The sweep, as `sweep list` shows it (default: the most recent).")
    ] = None,
    tracking_uri: TrackingUri = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(help="Port to serve on (default: 5000; 8080 with --optuna).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="MLflow server processes.")] = 1,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in the web browser.")] = False,
    optuna: Annotated[
        bool,
        typer.Option(
            "--optuna", help="Serve Optuna's dashboard of the sweep's study instead (the `dashboard` extra)."
        ),
    ] = False,
    storage: Storage = None,
) -> None:
    """Open the sweep's trials in the MLflow UI: model training, flat, best first, its charts ready."""
    if optuna:
        _optuna_dashboard(name, tracking_uri, storage, host, port or DASHBOARD_PORT, open_browser)
        return
    uri = existing_store(tracking_uri) or no_store(tracking_uri)
    served = not uri.startswith(("http://", "https://"))
    if served and not uri.startswith(("sqlite:", "postgresql", "mysql")):
        fail(f"`sweep ui` serves a database store or points at a tracking server, not {uri}")
    port = port or 5000
    page = _sweep_page(uri, name, host, port)
    typer.echo(page)
    if not served:
        if open_browser:
            _open(page)
        return
    typer.echo(f"MLflow UI on http://{host}:{port} over {uri} (Ctrl-C to stop)", err=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host]
    command += ["--port", str(port), "--workers", str(workers)]
    # MLflow's job runner serves GenAI features sweeps do not use, in a handful of extra processes.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    _serve(subprocess.Popen(command, env=env), page if open_browser else None)


def _sweep_page(uri: str, name: str | None, host: str, port: int) -> str:
    """`trials of sweep NAME: URL`, or the UI's start page where the store has no sweep yet."""
    quiet_libraries()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a server that is down: say so now
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    from mlflow.tracking import MlflowClient

    from tracking.dashboard import find_sweep, trials_url, ui_base

    base = ui_base(uri, host, port)
    try:
        experiment = find_sweep(MlflowClient(uri), name)
    except Exception as exc:  # an unreachable server, a damaged database
        fail(f"cannot read the MLflow store {uri}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    if experiment is None:
        if name is not None:
            fail(f"no sweep named {name!r} in {uri} (`sweep list` shows the sweeps there)")
        typer.echo(f"no sweeps in {uri} yet; the UI's start page:", err=True)
        return f"{base}/"
    return trials_url(base, experiment.experiment_id)


def _open(url: str) -> None:
    import webbrowser

    if not webbrowser.open(url):
        typer.echo(f"warning: no web browser to open; open {url} yourself", err=True)


def _open_when_serving(url: str, health: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(health, timeout=5):
                _open(url)
                return
        except OSError:
            time.sleep(0.5)


def _serve(process: subprocess.Popen[bytes], open_url: str | None) -> None:
    """Wait for the server; SIGTERM (`kill`) stops it as Ctrl-C does."""
    if open_url is not None:
        health = open_url.split("/#/", 1)[0].rstrip("/") + "/health"
        threading.Thread(target=_open_when_serving, args=(open_url, health, process), daemon=True).start()

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        raise typer.Exit(process.wait())
    except KeyboardInterrupt:
        process.terminate()
        raise typer.Exit(process.wait()) from None


def _optuna_dashboard(
    name: str | None, tracking_uri: str | None, storage: str | None, host: str, port: int, open_browser: bool
) -> None:
    """optuna-dashboard over the sweep's study, in whichever storage it is (journal file or RDB)."""
    try:
        import optuna_dashboard
    except ImportError:
        fail("--optuna needs optuna-dashboard: pip install 'sweeplab[dashboard]'")
    quiet_libraries()
    import optuna

    from tracking.store import local_dir, resolve_tracking_uri

    try:
        uri = resolve_tracking_uri(tracking_uri)
    except ValueError as exc:
        fail(str(exc))
    if storage and "://" in storage:
        where = storage
        try:
            opened: optuna.storages.BaseStorage = optuna.storages.RDBStorage(storage)
        except Exception as exc:
            fail(
                f"--storage {storage}: cannot open it: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            )
    else:
        path = Path(storage.removeprefix("journal:")) if storage else local_dir(uri) / JOURNAL_FILE
        where = str(path)
        if not path.is_file():
            fail(f"no Optuna journal at {path}: run the sweep first, or pass --storage")
        opened = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    studies = optuna.study.get_all_study_names(opened)
    if name is None:
        name = _latest_sweep(uri) if existing_store(tracking_uri) else None
        name = name if name in studies else (studies[-1] if studies else None)
    if name is None or name not in studies:
        known = ", ".join(studies) or "none"
        fail(f"no Optuna study {name!r} in {where} (studies there: {known}; kerastuner sweeps have none)")
    study_id = opened.get_study_id_from_name(name)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    page = f"http://{shown}:{port}/dashboard/studies/{study_id}"
    typer.echo(page)
    typer.echo(f"optuna-dashboard on http://{host}:{port} over {where} (Ctrl-C to stop)", err=True)
    if open_browser:
        threading.Timer(2.0, _open, args=(page,)).start()

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        optuna_dashboard.run_server(opened, host=host, port=port)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except OSError as exc:  # the port is taken, the host is not this machine's
        fail(f"optuna-dashboard cannot listen on {host}:{port}: {exc}")


def _latest_sweep(uri: str) -> str | None:
    from mlflow.tracking import MlflowClient

    from tracking.dashboard import find_sweep

    found = find_sweep(MlflowClient(uri), None)
    return None if found is None else found.name


def trials_page(uri: str, name: str, experiment_id: str | None = None) -> str:
    """What `sweep run` and `sweep report` end with: the page of the sweep's trials, and for a
    database store the command that serves it."""
    from tracking.dashboard import trials_url, ui_base
    from tracking.store import resolve_tracking_uri

    if experiment_id is None:
        from mlflow.tracking import MlflowClient

        found = MlflowClient(uri).get_experiment_by_name(name)
        if found is None:
            return f"`sweep ui {name}`"
        experiment_id = found.experiment_id
    url = trials_url(ui_base(uri), experiment_id)
    if uri.startswith(("http://", "https://")):
        return url
    option = "" if uri == resolve_tracking_uri(None) else f" --tracking-uri {uri}"
    return f"{url}\n(served by: sweep ui {name}{option})"
