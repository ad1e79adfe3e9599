"""Several workers logging the sweep's datasets at once, on a real SQLite MLflow store."""

from __future__ import annotations

import threading
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput
from mlflow.tracking import MlflowClient

from tracking.datasets import log_inputs


def test_runs_logging_a_new_dataset_at_once_all_get_it(tmp_path: Path) -> None:
    """MLflow looks a dataset up, then inserts it; four runs doing that together for ten new
    datasets collide on its unique constraint (every round did, unguarded, on 2 cores)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("race")
    errors: list[str] = []
    runs: list[str] = []
    for round_ in range(10):
        inputs = [DatasetInput(Dataset(name="train", digest=f"d{round_}", source_type="code", source="{}"))]
        round_runs = [client.create_run(experiment).info.run_id for _ in range(4)]
        runs += round_runs
        barrier = threading.Barrier(len(round_runs))

        def worker(
            run_id: str, inputs: list[DatasetInput] = inputs, barrier: threading.Barrier = barrier
        ) -> None:
            own = MlflowClient(uri)  # a worker's own client and connections
            barrier.wait()
            try:
                log_inputs(own, run_id, inputs)
            except Exception as exc:  # collected: an assertion in a thread would be lost
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

        threads = [threading.Thread(target=worker, args=(run_id,)) for run_id in round_runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    for run_id in runs:
        assert [d.dataset.name for d in client.get_run(run_id).inputs.dataset_inputs] == ["train"]
