"""`sweep run --fuse K` through the real CLI: each fused trial is its own trial and run.

Pruned and NaN trials inside a pack, the budget with several workers, the refusal of the
KerasTuner engine. The torch variants run the same CLI with KERAS_BACKEND=torch (CI installs
torch 2.13; they skip without it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import sweep_cli
from tests.sweeps.test_cli_run import TINY, trial_runs, write_spec
from tests.sweeps.test_pruning_and_nan import NAN_BUILDER
from tracking import tags

ROOT = Path(__file__).parents[2]
BACKENDS = [
    "tensorflow",
    pytest.param(
        "torch",
        marks=[
            pytest.mark.slow,
            pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed"),
        ],
    ),
]


def study(workdir: Path, name: str) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(workdir / "optuna.journal"))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(backend))


@pytest.fixture(scope="module")
def fused_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, object]:
    """Five trials with --fuse 3: a pack of three, then a pack of two."""
    folder = tmp_path_factory.mktemp("fused")
    spec = write_spec(folder, {**TINY, "name": "fused", "budget": {"trials": 5}})
    result = sweep_cli("run", str(spec), "--fuse", "3", cwd=folder)
    return folder, f"sqlite:///{folder / 'mlflow.db'}", result


def test_each_fused_trial_is_a_trial_run_of_its_own(fused_sweep, tmp_path: Path) -> None:
    from experiments.data import load_dataset

    folder, uri, result = fused_sweep
    assert result.returncode == 0, result.stderr
    assert "sweep fused: 5 complete, 0 pruned, 0 failed" in result.stdout
    client = MlflowClient(uri)
    runs = trial_runs(client, "fused")
    assert [r.data.tags[tags.TRIAL] for r in runs] == ["0", "1", "2", "3", "4"]
    packs = [r.data.tags[tags.PACK] for r in runs]
    assert packs[0] == packs[1] == packs[2] != packs[3] == packs[4]
    data = load_dataset("digits", validation_split=0.25, seed=7)
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags[tags.STATE] == "complete"
        assert run.data.params["fuse"] == "3"
        epochs_run = int(run.data.metrics["epochs_run"])
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(1, epochs_run + 1)), key
        assert run.data.metrics["train_seconds"] > 0
        assert {"history.csv", "curves.png", "checkpoint"} <= {
            a.path for a in client.list_artifacts(run.info.run_id)
        }
        path = client.download_artifacts(
            run.info.run_id, "checkpoint/best.keras", str(tmp_path / run.info.run_id)
        )
        _, accuracy = keras.saving.load_model(path).evaluate(data.x_val, data.y_val, verbose=0)
        assert accuracy == pytest.approx(run.data.metrics["best_val_accuracy"], abs=1e-6)
    exp = client.get_experiment_by_name("fused")
    (parent,) = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = 'sweep'")
    assert parent.data.metrics["trials_complete"] == 5
    assert len(study(folder, "fused").trials) == 5


def _run(workdir: Path, uri: str, spec: dict, backend: str) -> list:
    """Run `spec` (its space in the order given: the grid's order) and return its trial runs."""
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {"PYTHONPATH": f"{workdir}:{ROOT}", "KERAS_BACKEND": backend}
    result = sweep_cli("run", "tiny.yaml", "--tracking-uri", uri, cwd=workdir, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return trial_runs(MlflowClient(uri), spec["name"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_nan_branch_fails_alone_in_its_pack(backend: str, tracking_uri: str, workdir: Path) -> None:
    (workdir / "poisoned.py").write_text(NAN_BUILDER)  # NaN from the first batch when dropout > 0.25
    spec = {
        **TINY,
        "name": "nan-pack",
        "model": {"name": "poisoned:build"},
        "train": {"epochs": 3, "batch_size": 64, "fuse": 3},
        "space": {
            "optimizer": "adam",
            "learning_rate": 0.01,
            "dropout": {"choices": [0.0, 0.4, 0.1, 0.2]},
            "patience": 3,
        },
        "engine": {"name": "optuna", "sampler": "grid"},
        "budget": {"trials": 3},
    }
    runs = _run(workdir, tracking_uri, spec, backend)
    # A pack of three, then a pack of one: the failed trial does not use up the budget.
    assert [r.data.tags[tags.STATE] for r in runs] == ["complete", "failed", "complete", "complete"]
    packs = [r.data.tags[tags.PACK] for r in runs]
    assert packs[0] == packs[1] == packs[2] != packs[3]
    nan = runs[1]
    assert nan.info.status == "FAILED" and nan.data.tags[tags.REASON] == "nan_loss"
    assert nan.data.metrics["epochs_run"] == 1  # failed at once, no more epochs spent on it
    assert [r.data.metrics["epochs_run"] for r in (runs[0], runs[2], runs[3])] == [3, 3, 3]
    State = optuna.trial.TrialState
    assert [t.state for t in study(workdir, "nan-pack").trials] == [State.COMPLETE, State.FAIL] + [
        State.COMPLETE
    ] * 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_slow_branches_are_pruned_inside_their_pack(backend: str, tracking_uri: str, workdir: Path) -> None:
    """Each branch reports to its own trial; the second pack's slow trials are pruned against
    the first pack's and stop, while the pack goes on."""
    spec = {
        **TINY,
        "name": "pruned-pack",
        "train": {"epochs": 4, "batch_size": 64, "fuse": 3},
        "space": {
            "learning_rate": {"choices": [3e-2, 1e-5]},
            "optimizer": {"choices": ["adam", "rmsprop", "nesterov"]},
            "patience": 4,
        },
        "engine": {
            "name": "optuna",
            "sampler": "grid",
            "pruner": {"name": "median", "startup_trials": 2, "warmup_epochs": 0},
        },
        "budget": {"trials": 6},
    }
    runs = _run(workdir, tracking_uri, spec, backend)
    assert [r.data.tags[tags.STATE] for r in runs] == ["complete"] * 3 + ["pruned"] * 3
    for run in runs[3:]:
        assert run.info.status == "FINISHED"
        assert 1 <= run.data.metrics["pruned_epoch"] == run.data.metrics["epochs_run"] < 4
    assert len({r.data.tags[tags.PACK] for r in runs[3:]}) == 1
    trials = study(workdir, "pruned-pack").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3 + [
        optuna.trial.TrialState.PRUNED
    ] * 3


def test_kerastuner_refuses_fused_trials(workdir: Path) -> None:
    write_spec(workdir, {**TINY, "engine": {"name": "kerastuner", "tuner": "random", "seed": 1}})
    result = sweep_cli("run", "tiny.yaml", "--fuse", "2", cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: spec tiny.yaml: train.fuse: 2 trials at once needs engine optuna; the kerastuner engine "
        "runs one trial at a time (use fuse: 1)"
    ]
    assert not (workdir / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("change", "has"),
    [
        ({"dataset": {"name": "breast_cancer"}}, "task binary"),  # inferred from the targets
        (
            {"train": {"epochs": 1, "metrics": ["accuracy", "top_3_accuracy"]}},
            "train.metrics ['accuracy', 'top_3_accuracy']",
        ),
        ({"train": {"epochs": 1, "loss": "categorical_hinge"}}, "train.loss 'categorical_hinge'"),
    ],
)
def test_packs_refuse_what_their_head_cannot_score(change: dict, has: str, workdir: Path) -> None:
    write_spec(workdir, {**TINY, **change})
    result = sweep_cli("run", "tiny.yaml", "--fuse", "2", cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: spec: train.fuse: 2 trials at once need the classification task with its "
        f"default loss and metrics, on arrays in memory; this spec has {has} (use fuse: 1)"
    ]
    assert not (workdir / "mlflow.db").exists()


def test_fuse_must_be_a_positive_integer(workdir: Path) -> None:
    write_spec(workdir, TINY)
    result = sweep_cli("run", "tiny.yaml", "--fuse", "0", cwd=workdir)
    assert result.returncode == 2 and "Invalid value for '--fuse'" in result.stderr
    write_spec(workdir, {**TINY, "train": {"epochs": 1, "fuse": "many"}})
    result = sweep_cli("run", "tiny.yaml", cwd=workdir)
    assert result.returncode == 2 and "train.fuse: Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_workers_fusing_three_spend_the_budget_exactly(
    backend: str, tracking_uri: str, workdir: Path
) -> None:
    spec = {**TINY, "name": "shared", "train": {"epochs": 2, "batch_size": 64}, "budget": {"trials": 7}}
    write_spec(workdir, spec)
    result = sweep_cli(
        "run",
        "tiny.yaml",
        "--workers",
        "2",
        "--fuse",
        "3",
        "--tracking-uri",
        tracking_uri,
        cwd=workdir,
        timeout=900,
        env={"KERAS_BACKEND": backend},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "7 complete, 0 pruned, 0 failed" in result.stdout
    trials = study(workdir, "shared").trials
    assert len(trials) == 7 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["sweeplab_worker"]["pid"] for t in trials}) == 2
    runs = trial_runs(MlflowClient(tracking_uri), "shared")
    assert sorted(int(r.data.tags[tags.TRIAL]) for r in runs) == list(range(7))
    sizes: dict[str, int] = {}
    for run in runs:
        sizes[run.data.tags[tags.PACK]] = sizes.get(run.data.tags[tags.PACK], 0) + 1
    assert max(sizes.values()) <= 3 and sum(sizes.values()) == 7
