"""Fixtures for the experiments tests: tiny real data and an offline Keras cache."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow


@pytest.fixture(scope="session")
def digits():
    """A small digits split, shared read-only: training on it takes about a second."""
    from experiments.data import load_dataset

    return load_dataset("digits", train_size=300, val_size=100, seed=0)


@pytest.fixture
def offline_keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Keras home with the network cut at Keras's download call.

    Keras reads KERAS_HOME once, at import, so the test points its resolved home at
    tmp_path instead of setting the variable (a subprocess test covers the variable).
    """
    from keras.src.backend import config
    from keras.src.utils import file_utils

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(f"network disabled in tests: {url}")

    home = tmp_path / "keras-home"
    home.mkdir()
    monkeypatch.setattr(config, "_KERAS_DIR", str(home))
    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    return home
