from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.data import Dataset, DatasetError, load_dataset
from experiments.sources import DIGITS_TEST_FRACTION


def _ids(x: np.ndarray) -> set[int]:
    """Sample ids encoded as the first feature by the npz fixtures below."""
    return {int(v) for v in x.reshape(len(x), -1)[:, 0]}


def _write_npz(path: Path, n: int = 50, **extra: np.ndarray) -> str:
    """x[i] starts with the id i, so tests can see which samples went where."""
    x = np.zeros((n, 3), dtype=np.float64)
    x[:, 0] = np.arange(n)
    x[:, 1] = 2.5
    np.savez(path, x_train=x, y_train=np.arange(n) % 4, **extra)
    return f"npz:{path}"


def test_digits_is_offline_scaled_and_has_a_fixed_test_split():
    data = load_dataset("digits")
    assert isinstance(data, Dataset)
    assert data.input_shape == (8, 8, 1)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype.kind == "i"
    assert 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    assert data.num_classes == 10
    n_test = round(1797 * DIGITS_TEST_FRACTION)
    assert len(data.y_test) == n_test
    assert len(data.y_train) + len(data.y_val) == 1797 - n_test
    assert len(data.y_val) == round((1797 - n_test) * 0.2)
    other_seed = load_dataset("digits", seed=5)
    assert sorted(other_seed.y_test.tolist()) == sorted(data.y_test.tolist())


def test_digits_upscaled_to_mnist_size():
    data = load_dataset("digits", image_size=28, train_size=10, val_size=5, test_size=5)
    assert data.input_shape == (28, 28, 1)
    assert data.x_val.shape == (5, 28, 28, 1) and data.x_test.shape == (5, 28, 28, 1)


def test_same_seed_same_split_other_seed_other_split():
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    c = load_dataset("digits", seed=4)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x_val, c.x_val)


def test_npz_without_validation_is_split_disjointly(tmp_path: Path):
    name = _write_npz(tmp_path / "d.npz", n=50)
    data = load_dataset(name, validation_split=0.2, seed=1)
    assert data.name == name
    train, val = _ids(data.x_train), _ids(data.x_val)
    assert len(val) == 10 and len(train) == 40
    assert train | val == set(range(50)) and not train & val
    assert data.x_test is None and data.y_test is None
    assert data.x_train.dtype == np.float32
    assert np.all(data.x_train[:, 1] == 2.5)  # values kept as given
    assert data.num_classes == 4


def test_npz_with_validation_and_test_uses_them(tmp_path: Path):
    x_val = np.full((7, 3), 100.0)
    x_test = np.full((5, 3), 200.0)
    name = _write_npz(
        tmp_path / "d.npz",
        n=30,
        x_val=x_val,
        y_val=np.array([[0], [1], [2], [3], [4], [5], [6]]),  # (N, 1) labels are flattened
        x_test=x_test,
        y_test=np.arange(5),
    )
    data = load_dataset(name, test_size=3)
    assert len(data.y_train) == 30  # nothing moved to validation
    assert np.all(data.x_val == 100.0) and data.y_val.shape == (7,)
    assert np.all(data.x_test == 200.0) and len(data.y_test) == 3
    assert data.num_classes == 7


def test_sizes_take_seeded_subsets():
    sizes = {"train_size": 700, "val_size": 300, "test_size": 50}  # seed 003's 700/300
    data = load_dataset("digits", validation_split=0.3, seed=2, **sizes)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (700, 300, 50)
    again = load_dataset("digits", validation_split=0.3, seed=2, **sizes)
    np.testing.assert_array_equal(data.x_train, again.x_train)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_size": 5000}, r"train_size=5000 but the training split .* has 1150 samples"),
        ({"val_size": 0}, r"val_size=0"),
        ({"test_size": 400}, r"test_size=400 .* has 359 samples"),
        ({"validation_split": 1.0}, r"validation_split must be in \(0, 1\); got 1.0"),
        ({"image_size": 28}, None),
    ],
)
def test_size_errors(kwargs: dict, message: str | None):
    if message is None:
        load_dataset("digits", **kwargs)
        return
    with pytest.raises(DatasetError, match=message):
        load_dataset("digits", **kwargs)


def test_test_size_without_a_test_split(tmp_path: Path):
    with pytest.raises(DatasetError, match="test_size=3 given but .* has no test split"):
        load_dataset(_write_npz(tmp_path / "d.npz"), test_size=3)


def test_unknown_dataset_suggests_the_closest():
    with pytest.raises(DatasetError, match=r"unknown dataset 'mnits' \(did you mean 'mnist'\?\)"):
        load_dataset("mnits")


def test_npz_missing_file(tmp_path: Path):
    path = tmp_path / "absent.npz"
    with pytest.raises(DatasetError, match=rf"{path}.* does not exist.*x_train, y_train"):
        load_dataset(f"npz:{path}")


def test_npz_missing_arrays_are_named(tmp_path: Path):
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros((4, 2)), x_val=np.zeros((2, 2)))
    with pytest.raises(DatasetError, match=r"lacks array\(s\) y_train, y_val; it has x_train, x_val"):
        load_dataset(f"npz:{path}")


def test_npz_unreadable_file(tmp_path: Path):
    path = tmp_path / "bad.npz"
    path.write_text("not a zip")
    with pytest.raises(DatasetError, match="cannot read .* as a .npz file"):
        load_dataset(f"npz:{path}")


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.eye(4)[np.arange(20) % 4], r"shape \(N,\) or \(N, 1\); got shape \(20, 4\)"),
        (np.linspace(0, 1, 20), "integer class ids; got dtype float64"),
        (np.arange(20) - 1, "class ids >= 0; got -1"),
        (np.arange(19), "x_train has 20 samples but y_train has 19"),
    ],
)
def test_npz_bad_labels(tmp_path: Path, y: np.ndarray, message: str):
    path = tmp_path / "labels.npz"
    np.savez(path, x_train=np.zeros((20, 2)), y_train=y)
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"npz:{path}", task="classification")


def test_npz_integral_float_labels_are_class_ids_when_the_task_says_so(tmp_path: Path):
    path = tmp_path / "labels.npz"
    np.savez(path, x_train=np.zeros((20, 2)), y_train=(np.arange(20) % 3).astype(float))
    data = load_dataset(f"npz:{path}", task="classification")
    assert data.y_train.dtype.kind == "i" and data.num_classes == 3
    inferred = load_dataset(f"npz:{path}")  # floats, with no task given: regression targets
    assert inferred.task == "regression" and inferred.y_train.shape == (16, 1)


def test_image_size_needs_images(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"image_size=16 needs images .* got \(40, 3\)"):
        load_dataset(_write_npz(tmp_path / "d.npz"), image_size=16)
