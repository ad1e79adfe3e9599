"""The user's own data: dataset functions (arrays or streams) and folders of images, each checked
where it is loaded, with one line naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.data import Dataset, DatasetError, StreamedDataset, load_dataset

FN = "tests.experiments.datasets"


def write_pngs(
    folder: Path, per_class: int = 6, size: int = 12, classes: tuple[str, ...] = ("cat", "dog")
) -> Path:
    """A folder of generated images, one subfolder per class: dark squares and bright ones."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            base = 40 + 160 * index
            pixels = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    return folder


def test_a_function_returning_arrays_as_keras_datasets_do() -> None:
    data = load_dataset(f"{FN}:as_keras", options={"n": 200}, validation_split=0.25)
    assert isinstance(data, Dataset) and data.task == "classification"
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (150, 50, 50)
    assert data.input_shape == (8, 8)


def test_a_function_returning_a_mapping_with_its_own_validation_split() -> None:
    data = load_dataset(f"{FN}:as_mapping", options={"n": 200})
    assert (len(data.y_train), len(data.y_val), data.x_test) == (150, 50, None)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (
            f"{FN}:as_mapping",
            {"poison": True},
            r"x_val holds 1 NaN value \(first at index \[4, 2, 3\]",
        ),
        (
            f"{FN}:broken",
            {},
            "dataset function 'tests.experiments.datasets:broken' raised RuntimeError: the database is down",
        ),
        (
            f"{FN}:wrong_shape",
            {},
            "returned list; expected ..x_train, y_train., .x_test, y_test.. as keras.datasets",
        ),
        (f"{FN}:as_keras", {"rows": 3}, "raised TypeError: .*unexpected keyword argument 'rows'"),
        (f"{FN}:absent", {}, "module 'tests.experiments.datasets' has no function 'absent'"),
        ("no_such_pkg.data:load", {}, "cannot import module 'no_such_pkg.data'"),
    ],
)
def test_function_errors_are_one_line(name: str, options: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(name, options=options)
    assert "\n" not in str(info.value)


def test_a_folder_of_images_one_subfolder_per_class(tmp_path: Path) -> None:
    folder = write_pngs(tmp_path / "pets")
    rgb = load_dataset(f"dir:{folder}", image_size=8, validation_split=0.25)
    assert rgb.input_shape == (8, 8, 3) and rgb.task == "binary"  # two classes: labels 0 and 1
    assert 0.0 <= rgb.x_train.min() and rgb.x_train.max() <= 1.0
    assert len(rgb.y_train) + len(rgb.y_val) == 12
    gray = load_dataset(f"dir:{folder}", image_size=8, color_mode="grayscale", task="classification")
    assert gray.input_shape == (8, 8, 1) and gray.num_classes == 2


def test_a_folder_that_is_not_one_of_class_folders(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="image folder .*absent.* does not exist"):
        load_dataset(f"dir:{tmp_path / 'absent'}")
    write_pngs(tmp_path / "one", classes=("only",))
    with pytest.raises(DatasetError, match=r"has 1 class subfolder\(s\) \(only\); expected one subfolder"):
        load_dataset(f"dir:{tmp_path / 'one'}")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(DatasetError, match="image folder .*empty"):
        load_dataset(f"dir:{tmp_path / 'empty'}")


def test_streams_are_kept_as_they_are_and_read_from_their_first_batches() -> None:
    data = load_dataset(f"{FN}:streamed")
    assert isinstance(data, StreamedDataset)
    assert (data.task, data.num_classes, data.input_shape, data.output_shape) == (
        "classification",
        10,
        (8, 8),
        (10,),
    )
    import tensorflow as tf

    assert isinstance(data.train, tf.data.Dataset)  # the function's own object, not a copy


def test_a_py_dataset_stream_trains_as_it_is() -> None:
    from experiments.training import TrainConfig, train

    data = load_dataset(f"{FN}:py_streamed")
    assert isinstance(data, StreamedDataset) and (data.task, data.output_shape) == ("binary", (1,))
    config = TrainConfig(model="mlp", optimizer="adam", learning_rate=0.01, epochs=1, task="binary")
    result = train(config, data)
    assert set(result.history) == {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"}


@pytest.mark.parametrize(
    ("options", "kwargs", "message"),
    [
        (
            {"nan_in_val": True},
            {},
            r"x of the validation stream batch 0 holds 1 NaN value \(first at index \[1, 0",
        ),
        ({"num_classes": None}, {}, "streams class ids: its mapping must give 'num_classes'"),
        ({"val": None}, {}, "returned a training stream without 'val'"),
        ({"num_classes": 5}, {}, "class id .* in the first batches, but num_classes=5"),
        (
            {},
            {"train_size": 10},
            "train_size need the dataset in memory as arrays, but .* streams its batches",
        ),
        ({}, {"task": "binary"}, "task binary needs labels 0 and 1"),
        ({"extra": 1}, {}, "returned unknown key.s. extra; streams go under train, val, test, num_classes"),
    ],
)
def test_stream_errors_are_one_line(options: dict, kwargs: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"{FN}:streamed", options=options, **kwargs)
