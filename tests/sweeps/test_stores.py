"""Which store an error escaping the trial loop came from, decided on real errors."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from sweeps.running.stores import failed_store


def raised(fn) -> BaseException:
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def test_an_mlflow_client_error_is_mlflows(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    error = raised(lambda: MlflowClient("http://127.0.0.1:9").get_experiment_by_name("x"))
    assert failed_store(error) == "MLflow"


def test_an_optuna_storage_that_cannot_be_read_is_optunas(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    backend = optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal"))
    error = raised(lambda: optuna.storages.JournalStorage(backend).get_all_studies())
    assert isinstance(error, IsADirectoryError) and failed_store(error) == "Optuna"


def test_a_refused_call_to_optuna_is_not_a_store_failure() -> None:
    study = optuna.create_study()
    trial = study.ask()
    trial.suggest_categorical("optimizer", ["sgd", "adam"])
    study.tell(trial, 1.0)
    again = study.ask()
    error = raised(lambda: again.suggest_categorical("optimizer", ["sgd", "adam", "rmsprop"]))
    assert isinstance(error, ValueError) and failed_store(error) is None


def test_other_errors_are_no_stores() -> None:
    assert failed_store(raised(lambda: 1 / 0)) is None
