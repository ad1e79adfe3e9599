from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import experiments
from experiments.registry import (
    DATASETS,
    MODEL_OPTIONS,
    MODELS,
    MOMENTUM_OPTIMIZERS,
    OPTIMIZERS,
    is_npz,
    is_user_builder,
)

REPO = Path(__file__).resolve().parents[2]


def test_names_match_the_seeds():
    assert OPTIMIZERS == ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam")
    assert MOMENTUM_OPTIMIZERS == ("momentum", "nesterov")
    assert MODELS == ("mlp", "cnn", "alexnet")
    assert DATASETS == ("digits", "mnist", "fashion_mnist", "cifar10", "breast_cancer", "diabetes")
    assert set(MODEL_OPTIONS) == set(MODELS)


@pytest.mark.parametrize(
    ("name", "npz", "user"),
    [
        ("digits", False, False),
        ("npz:/data/x.npz", True, False),
        ("npz:C:/data/x.npz", True, False),
        ("pkg.mod:build", False, True),
        ("mlp", False, False),
    ],
)
def test_name_helpers(name: str, npz: bool, user: bool):
    assert is_npz(name) is npz
    assert is_user_builder(name) is user


def test_import_is_light():
    code = (
        "import sys, experiments, experiments.registry, experiments.errors\n"
        "heavy = {'keras', 'tensorflow', 'sklearn', 'jax', 'torch'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_lazy_names_resolve_to_their_objects():
    from experiments.data import load_dataset
    from experiments.training import TrainConfig, train

    assert experiments.train is train
    assert experiments.TrainConfig is TrainConfig
    assert experiments.load_dataset is load_dataset
    assert set(experiments.__all__) <= set(dir(experiments))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        experiments.nope  # noqa: B018
