"""keras.datasets through their cache: what works offline, and what the error tells."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from experiments.data import DatasetError, load_dataset
from experiments.keras_cache import keras_datasets_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "files", "origin"),
    [
        ("mnist", ["mnist.npz"], "tf-keras-datasets/mnist.npz"),
        (
            "fashion_mnist",
            [
                "fashion-mnist/train-labels-idx1-ubyte.gz",
                "fashion-mnist/train-images-idx3-ubyte.gz",
                "fashion-mnist/t10k-labels-idx1-ubyte.gz",
                "fashion-mnist/t10k-images-idx3-ubyte.gz",
            ],
            "tf-keras-datasets/train-labels-idx1-ubyte.gz",
        ),
        ("cifar10", ["cifar-10-batches-py-target_archive"], "kriz/cifar-10-python.tar.gz"),
    ],
)
def test_offline_error_names_every_missing_file_and_its_path(
    offline_keras_home: Path, name: str, files: list[str], origin: str
):
    with pytest.raises(DatasetError) as caught:
        load_dataset(name)
    message = str(caught.value)
    assert f"dataset {name!r} could not be loaded" in message
    assert "network disabled in tests" in message  # the cause is kept
    for relative in files:
        assert str(offline_keras_home / "datasets" / relative) in message
    assert origin in message
    assert "npz:PATH" in message
    assert socket.getdefaulttimeout() is None  # the download timeout is undone


def test_keras_datasets_dir_follows_the_keras_home(offline_keras_home: Path):
    assert keras_datasets_dir() == offline_keras_home / "datasets"


def test_a_cached_file_failing_the_hash_check_is_reported(offline_keras_home: Path):
    cached = offline_keras_home / "datasets" / "mnist.npz"
    cached.parent.mkdir(parents=True)
    np.savez(cached, x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DatasetError, match="hash does not match") as caught:
        load_dataset("mnist")
    assert str(cached) in str(caught.value)


def _write_idx(path: Path, array: np.ndarray, header_bytes: int) -> None:
    with gzip.open(path, "wb") as f:
        f.write(b"\0" * header_bytes + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_a_cache_laid_out_by_hand(offline_keras_home: Path):
    # Keras checks no hash for Fashion-MNIST, so files at the cache path are read as they are.
    folder = offline_keras_home / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 10)):
        _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10, header_bytes=8)
        images = rng.integers(0, 256, size=(n, 28, 28))
        images[0] = 255
        _write_idx(folder / f"{split}-images-idx3-ubyte.gz", images, header_bytes=16)

    data = load_dataset("fashion_mnist", validation_split=0.25)
    assert data.input_shape == (28, 28, 1)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (30, 10, 10)
    assert data.x_train.dtype == np.float32
    assert data.x_train.max() <= 1.0 and max(data.x_train.max(), data.x_val.max()) == 1.0
    assert data.num_classes == 10


@pytest.mark.slow
def test_keras_home_variable_is_honoured(tmp_path: Path):
    """End to end in a fresh process, since Keras reads KERAS_HOME when imported."""
    code = textwrap.dedent(
        """
        import urllib.error
        from keras.src.utils import file_utils
        from experiments.data import DatasetError, load_dataset

        def no_network(url, *args, **kwargs):
            raise urllib.error.URLError("offline")

        file_utils.urlretrieve = no_network
        try:
            load_dataset("mnist")
        except DatasetError as exc:
            print(exc)
        """
    )
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert str(tmp_path / "datasets" / "mnist.npz") in out.stdout
