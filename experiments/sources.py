"""Where a dataset's raw arrays come from, and how each source scales its pixels.

Every source gives train (and test) arrays as stored; `experiments.data` splits and
subsets them, then applies the source's ``prepare`` only to what it keeps, so that a
700-sample MNIST subset never scales 60,000 images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.errors import DatasetError, did_you_mean
from experiments.images import per_image_standardization
from experiments.registry import DATASETS, NPZ_PREFIX, is_npz

__all__ = ["DIGITS_TEST_FRACTION", "RawData", "load_raw", "source_uri"]

# digits ships without a test split; this tail of sklearn's fixed order is held out as one.
DIGITS_TEST_FRACTION = 0.2

_NPZ_REQUIRED = ("x_train", "y_train")
_NPZ_PAIRS = (("x_val", "y_val"), ("x_test", "y_test"))


@dataclass(frozen=True)
class RawData:
    """Arrays as a source stores them; ``prepare`` maps stored images to model inputs."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    prepare: Callable[[np.ndarray], np.ndarray]
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


def load_raw(name: str) -> RawData:
    """The raw arrays of a built-in dataset name or ``npz:PATH``."""
    if is_npz(name):
        return _load_npz(Path(name[len(NPZ_PREFIX) :]))
    if name == "digits":
        return _load_digits()
    if name in DATASETS:
        return _load_keras(name)
    raise DatasetError(
        f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; expected one of "
        f"{', '.join(DATASETS)} or 'npz:PATH'"
    )


def _load_digits() -> RawData:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: works offline

    bunch = load_digits()
    images, labels = bunch.images, bunch.target
    n_test = round(len(labels) * DIGITS_TEST_FRACTION)
    return RawData(
        x_train=images[:-n_test],
        y_train=labels[:-n_test],
        x_test=images[-n_test:],
        y_test=labels[-n_test:],
        prepare=_scale_digits,
    )


def _load_keras(name: str) -> RawData:
    from experiments.keras_cache import load_keras_dataset

    x_train, y_train, x_test, y_test = load_keras_dataset(name)
    prepare = per_image_standardization if name == "cifar10" else _scale_grayscale_bytes
    return RawData(x_train, y_train, x_test, y_test, prepare=prepare)


def _load_npz(path: Path) -> RawData:
    """Arrays laid out as keras.datasets names them; values are kept as given."""
    if not path.is_file():
        raise DatasetError(
            f"npz dataset file {str(path)!r} does not exist; expected a .npz with arrays "
            f"{', '.join(_NPZ_REQUIRED)} (and optionally x_val, y_val, x_test, y_test)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {str(path)!r} as a .npz file: {exc}") from exc
    missing = [key for key in _NPZ_REQUIRED if key not in arrays]
    for pair in _NPZ_PAIRS:
        present = [key for key in pair if key in arrays]
        if len(present) == 1:
            missing += [key for key in pair if key not in arrays]
    if missing:
        raise DatasetError(
            f"npz dataset {str(path)!r} lacks array(s) {', '.join(missing)}; it has "
            f"{', '.join(sorted(arrays)) or 'none'} (required: x_train, y_train; optional "
            "pairs: x_val with y_val, x_test with y_test)"
        )
    return RawData(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_val=arrays.get("x_val"),
        y_val=arrays.get("y_val"),
        x_test=arrays.get("x_test"),
        y_test=arrays.get("y_test"),
        prepare=_as_float32,
    )


def _scale_digits(x: np.ndarray) -> np.ndarray:
    """digits pixels are 0..16; grayscale gains the channel axis Conv2D expects."""
    return (x.astype(np.float32) / 16.0)[..., np.newaxis]


def _scale_grayscale_bytes(x: np.ndarray) -> np.ndarray:
    """MNIST/Fashion-MNIST bytes to 0..1, as the seeds do (``/ 255.0``), with a channel axis."""
    return (x.astype(np.float32) / 255.0)[..., np.newaxis]


def _as_float32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32)


def source_uri(name: str) -> str:
    """Where dataset ``name``'s data comes from, for tracking: the ``.npz`` file, the file
    scikit-learn ships the digits in, or the address Keras downloads a dataset from."""
    if is_npz(name):
        return Path(name[len(NPZ_PREFIX) :]).resolve().as_uri()
    if name == "digits":
        from importlib import resources

        return Path(str(resources.files("sklearn.datasets.data") / "digits.csv.gz")).as_uri()
    from experiments.keras_cache import CACHE_FILES

    files = CACHE_FILES.get(name)
    return files[0].origin if files else name
