"""A store that cannot be used ends `sweep run` in seconds, with one line naming it and the
cause, before anything is written to either store."""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path

import pytest

from tests.conftest import sweep_cli
from tests.faults.conftest import TINY, write_spec

PG = os.environ.get("SWEEPLAB_TEST_POSTGRES", f"postgresql://{getpass.getuser()}@127.0.0.1:5432")


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 10)


def _bad_journal(path: Path) -> None:
    path.write_text(
        '{"op_code": 0, "worker_id": "x", "study_name": "tiny", "directions": [1]}\nnot json\n{}\n'
    )


CASES = {
    "unreachable tracking server": (
        ["--tracking-uri", "http://127.0.0.1:9"],
        None,
        "MLflow tracking server http://127.0.0.1:9: does not answer (Connection refused",
    ),
    "tracking SQLite file is not a database": (
        ["--tracking-uri", "sqlite:///notes.db"],
        ("notes.db", _garbage),
        "notes.db: is not an SQLite database",
    ),
    "tracking SQLite file in a missing folder": (
        ["--tracking-uri", "sqlite:///nowhere/mlflow.db"],
        None,
        "nowhere/mlflow.db: cannot be created: the folder",
    ),
    "Optuna storage on a database that does not exist": (
        ["--storage", f"{PG}/sweeplab_no_such_database"],
        None,
        'database "sweeplab_no_such_database" does not exist',
    ),
    "Optuna storage on a port nothing listens on": (
        ["--storage", "postgresql://someone:secret@127.0.0.1:9/optuna"],
        None,
        "Optuna storage postgresql://someone:***@127.0.0.1:9/optuna: cannot connect",
    ),
    "Optuna storage needs a driver that is not installed": (
        ["--storage", "mysql://someone@127.0.0.1/optuna"],
        None,
        "needs a database driver that is not installed",
    ),
    "damaged journal": (
        ["--storage", "journal:damaged.journal"],
        ("damaged.journal", _bad_journal),
        "journal:damaged.journal: line 2 is not a journal entry",
    ),
    "journal that is a folder": (
        ["--storage", "journal:folder.journal"],
        ("folder.journal", lambda p: p.mkdir()),
        "journal:folder.journal: is a directory",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unusable_store_exits_2_fast_and_writes_nothing(workdir: Path, case: str) -> None:
    args, prepare, expected = CASES[case]
    write_spec(workdir, TINY)
    if prepare is not None:
        name, make = prepare
        make(workdir / name)
    before = {p.name: p.stat().st_mtime for p in workdir.iterdir()}
    started = time.monotonic()
    result = sweep_cli("run", "spec.yaml", *args, cwd=workdir, timeout=60)
    seconds = time.monotonic() - started
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and expected in line, line
    assert "Traceback" not in result.stderr and not result.stdout
    assert {p.name: p.stat().st_mtime for p in workdir.iterdir()} == before  # nothing created or changed
    assert seconds < 20, f"took {seconds:.1f} s"


def test_mlflow_store_given_as_the_optuna_storage_is_refused(tracking_uri: str, workdir: Path) -> None:
    write_spec(workdir, TINY)
    result = sweep_cli("run", "spec.yaml", "--storage", tracking_uri, cwd=workdir, timeout=60)
    assert result.returncode == 2
    assert "is an SQLite database but not an Optuna storage (tables: " in result.stderr


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.mkdir(), "error: spec: spec.yaml is a folder, not a spec file"),
        (
            lambda p: p.write_bytes(bytes(range(128, 256))),
            "error: spec: spec.yaml is not a text file (a spec is YAML)",
        ),
    ],
)
def test_spec_that_is_not_a_spec_file_says_so(workdir: Path, make, expected: str) -> None:
    make(workdir / "spec.yaml")
    result = sweep_cli("run", "spec.yaml", cwd=workdir, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == expected


def test_damaged_kerastuner_project_exits_2(workdir: Path) -> None:
    project = workdir / "kerastuner" / "tiny"
    project.mkdir(parents=True)
    (project / "oracle.json").write_text('{"ongoing_trials": {')  # cut off mid-write
    write_spec(workdir, {**TINY, "engine": {"name": "kerastuner", "tuner": "random"}})
    result = sweep_cli("run", "spec.yaml", cwd=workdir, timeout=60)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: KerasTuner project {project}: oracle.json cannot be read")
    assert not (workdir / "mlflow.db").exists()
