from __future__ import annotations

import sys
from pathlib import Path

import keras
import pytest

from experiments.architectures import ALEXNET_MIN_INPUT_SIZE
from experiments.data import Dataset
from experiments.models import ModelError, build_model
from experiments.training import TrainConfig, train

TINY_ALEXNET = {"input_size": ALEXNET_MIN_INPUT_SIZE, "width": 1 / 32}


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("mlp", {"units": 16}),
        ("cnn", {"filters": [4, 8], "units": 16}),
        ("alexnet", TINY_ALEXNET),
        ("tests.experiments.builders:tiny", {"units": 4}),
    ],
)
def test_each_model_trains_one_epoch(digits: Dataset, name: str, options: dict):
    config = TrainConfig(
        model=name,
        optimizer="adam",
        learning_rate=1e-3,
        epochs=1,
        dropout=0.2,
        model_options=options,
    )
    result = train(config, digits)
    assert result.epochs_run == 1 and result.stop_reason == "completed"
    assert 0.0 <= result.value <= 1.0


def test_mlp_is_the_seed_model_fn():
    """Seed 001: Flatten(28, 28) - Dense(100, relu) - Dense(10, softmax) has 79,510 weights."""
    model = build_model("mlp", (28, 28, 1), 10)
    assert model.count_params() == 78_500 + 1_010
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    with_dropout = build_model("mlp", (28, 28, 1), 10, dropout=0.3)
    dropouts = [layer for layer in with_dropout.layers if isinstance(layer, keras.layers.Dropout)]
    assert [layer.rate for layer in dropouts] == [0.3]
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"


def test_seed_003_mlp_with_two_units():
    model = build_model("mlp", (28, 28, 1), 10, units=2)
    assert model.get_layer("hidden").units == 2


def test_cnn_stacks_one_block_per_filter_count():
    model = build_model("cnn", (28, 28, 1), 10, filters=[8, 16, 32], kernel_size=5)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [8, 16, 32]
    assert convs[0].kernel_size == (5, 5)
    assert model.output_shape == (None, 10)


def test_full_alexnet_has_the_seed_parameter_count():
    """Seed 000's summary: 62,379,752 parameters for 227x227x3 inputs and 1000 classes."""
    model = build_model("alexnet", (32, 32, 3), 1000, dropout=0.5)
    assert model.count_params() == 62_379_752


def test_alexnet_minimum_input_size_is_exact():
    model = build_model("alexnet", (32, 32, 3), 10, **TINY_ALEXNET)
    assert model.get_layer("pool3").output.shape[1:3] == (1, 1)
    with pytest.raises(ModelError, match=f"input_size=66 .* minimum is {ALEXNET_MIN_INPUT_SIZE}"):
        build_model("alexnet", (32, 32, 3), 10, input_size=66, width=1 / 32)


@pytest.mark.parametrize(
    ("name", "shape", "options", "message"),
    [
        ("mlp", (8, 8, 1), {"unit": 4}, r"'mlp' has no option 'unit' \(did you mean 'units'\?\)"),
        ("cnn", (8, 8, 1), {"width": 2}, "options are: filters, kernel_size, units"),
        ("mlp", (8, 8, 1), {"units": 0}, "units must be an integer >= 1; got 0"),
        ("mlp", (8, 8, 1), {"units": True}, "units must be an integer >= 1; got True"),
        ("cnn", (8, 8, 1), {"filters": []}, "filters must be a non-empty list"),
        ("cnn", (8, 8, 1), {"filters": [4, -1]}, "filters must be an integer >= 1; got -1"),
        ("cnn", (8, 8, 1), {"filters": [4, 4, 4, 4]}, "needs at least 16x16 pixels"),
        ("cnn", (64,), {}, r"needs images of shape \(height, width, channels\); got .* \(64,\)"),
        ("alexnet", (32, 32, 3), {"width": 0}, "width must be a number > 0; got 0"),
        ("vgg", (8, 8, 1), {}, "unknown model 'vgg'; expected one of mlp, cnn, alexnet or a"),
    ],
)
def test_bad_names_and_options(name: str, shape: tuple, options: dict, message: str):
    with pytest.raises(ModelError, match=message):
        build_model(name, shape, 10, **options)


def test_dropout_out_of_range():
    with pytest.raises(ModelError, match=r"dropout must be in \[0, 1\); got 1.0"):
        build_model("mlp", (4,), 2, dropout=1.0)


def test_user_builder_gets_the_arguments_and_options():
    model = build_model("tests.experiments.builders:tiny", (8, 8, 1), 3, dropout=0.1, units=5)
    assert model.name == "tiny" and model.output_shape == (None, 3)
    assert model.layers[1].units == 5 and model.layers[2].rate == 0.1


def test_user_builder_from_a_directory_on_sys_path(tmp_path: Path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "import keras\n"
        "def wide(input_shape, num_classes, dropout, width=3):\n"
        "    inputs = keras.Input(shape=input_shape)\n"
        "    x = keras.layers.Flatten()(inputs)\n"
        "    x = keras.layers.Dense(width)(x)\n"
        "    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model("my_models:wide", (2, 2), 4, width=6)
    assert model.count_params() == (4 * 6 + 6) + (6 * 4 + 4)
    sys.modules.pop("my_models", None)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such_pkg.models:build", "cannot import module 'no_such_pkg.models'"),
        ("tests.experiments.builders:absent", "has no function 'absent'"),
        ("tests.experiments.builders:NOT_CALLABLE", "has no function 'NOT_CALLABLE'"),
        ("tests.experiments.builders:not_a_model", "returned str; expected a keras.Model"),
    ],
)
def test_user_builder_errors(name: str, message: str):
    with pytest.raises(ModelError, match=message):
        build_model(name, (8, 8, 1), 10)
