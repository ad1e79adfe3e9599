"""Where a dataset's raw arrays come from, and how each source scales its pixels.

Every source gives train (and test) arrays as stored; `experiments.data` splits and
subsets them, then applies the source's ``prepare`` only to what it keeps, so that a
700-sample MNIST subset never scales 60,000 images. A dataset function may return streams
instead (`experiments.streams`), which are used as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.errors import DatasetError, did_you_mean
from experiments.images import per_image_standardization
from experiments.imports import load_object
from experiments.registry import DATASETS, DIR_PREFIX, NPZ_PREFIX, is_dataset_function, is_dir, is_npz
from experiments.streams import StreamSource, is_stream

__all__ = ["DIGITS_TEST_FRACTION", "RawData", "load_raw", "source_uri"]

# The scikit-learn datasets ship without a test split; this tail of their fixed order is held out.
DIGITS_TEST_FRACTION = 0.2
_STREAM_KEYS = ("train", "val", "test", "num_classes")

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


def load_raw(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    image_size: int | None = None,
    color_mode: str | None = None,
) -> RawData | StreamSource:
    """The raw arrays of a built-in dataset, ``npz:PATH``, ``dir:PATH`` or a dataset function
    ``package.module:function`` (called with ``options``), or that function's streams."""
    if is_npz(name):
        return _load_npz(Path(name[len(NPZ_PREFIX) :]))
    if is_dir(name):
        return _load_dir(Path(name[len(DIR_PREFIX) :]), image_size, color_mode or "rgb")
    if is_dataset_function(name):
        return _load_function(name, dict(options or {}))
    if name in ("digits", "breast_cancer", "diabetes"):
        return _load_sklearn(name)
    if name in DATASETS:
        return _load_keras(name)
    raise DatasetError(
        f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; expected one of "
        f"{', '.join(DATASETS)}, 'npz:PATH', 'dir:PATH' or 'package.module:function'"
    )


def _load_sklearn(name: str) -> RawData:
    """A dataset bundled with scikit-learn (offline), the tail of its fixed order held out as test."""
    from sklearn import datasets  # bundled with scikit-learn: works offline

    bunch = getattr(datasets, f"load_{name}")()
    if name == "digits":
        inputs, prepare = bunch.images, _scale_digits
    else:
        inputs, prepare = bunch.data, _standardizer(bunch.data)
    n_test = round(len(bunch.target) * DIGITS_TEST_FRACTION)
    return RawData(
        x_train=inputs[:-n_test],
        y_train=bunch.target[:-n_test],
        x_test=inputs[-n_test:],
        y_test=bunch.target[-n_test:],
        prepare=prepare,
    )


def _standardizer(data: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Features to zero mean and unit variance by the statistics of the whole shipped table: a
    fixed scale, the same for every split and seed (breast_cancer's features span 0.001..4000)."""
    mean, std = data.mean(axis=0), data.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return lambda x: ((x - mean) / std).astype(np.float32)


def _load_function(name: str, options: dict[str, Any]) -> RawData | StreamSource:
    """Call the user's dataset function; it returns arrays as keras.datasets do, a mapping of
    arrays, or a mapping of streams."""
    function = load_object(name, "dataset function", DatasetError)
    try:
        returned = function(**options)
    except Exception as exc:
        raise DatasetError(f"dataset function {name!r} raised {type(exc).__name__}: {exc}") from exc
    where = f"dataset function {name!r}"
    if isinstance(returned, Mapping) and any(is_stream(returned.get(key)) for key in ("train", "val")):
        unknown = sorted(set(returned) - set(_STREAM_KEYS))
        if unknown:
            raise DatasetError(
                f"{where} returned unknown key(s) {', '.join(unknown)}; streams go under "
                f"{', '.join(_STREAM_KEYS)}"
            )
        return StreamSource(
            returned.get("train"), returned.get("val"), returned.get("test"), returned.get("num_classes")
        )
    if isinstance(returned, Mapping):
        arrays = {key: returned[key] for key in returned}
    elif (
        isinstance(returned, tuple | list)
        and len(returned) == 2
        and all(isinstance(pair, tuple | list) and len(pair) == 2 for pair in returned)
    ):
        (x_train, y_train), (x_test, y_test) = returned
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    else:
        raise DatasetError(
            f"{where} returned {type(returned).__name__}; expected ((x_train, y_train), (x_test, y_test)) "
            "as keras.datasets return them, a mapping with x_train, y_train (optionally x_val, y_val, "
            "x_test, y_test), or a mapping with 'train' and 'val' streams"
        )
    return _from_arrays(arrays, where, _as_float32)


def _from_arrays(
    arrays: Mapping[str, Any], where: str, prepare: Callable[[np.ndarray], np.ndarray]
) -> RawData:
    """Arrays laid out as keras.datasets names them, checked for presence, numbers and finiteness."""
    allowed = {*_NPZ_REQUIRED, *(key for pair in _NPZ_PAIRS for key in pair)}
    unknown = sorted(set(arrays) - allowed)
    if unknown:
        raise DatasetError(
            f"{where} has unknown array(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}"
        )
    missing = [key for key in _NPZ_REQUIRED if arrays.get(key) is None]
    for pair in _NPZ_PAIRS:
        present = [key for key in pair if arrays.get(key) is not None]
        if len(present) == 1:
            missing += [key for key in pair if arrays.get(key) is None]
    if missing:
        raise DatasetError(
            f"{where} lacks array(s) {', '.join(missing)}; it has "
            f"{', '.join(sorted(k for k, v in arrays.items() if v is not None)) or 'none'} "
            "(required: x_train, y_train; optional pairs: x_val with y_val, x_test with y_test)"
        )
    found = {key: np.asarray(value) for key, value in arrays.items() if value is not None}
    return RawData(
        x_train=found["x_train"],
        y_train=found["y_train"],
        x_val=found.get("x_val"),
        y_val=found.get("y_val"),
        x_test=found.get("x_test"),
        y_test=found.get("y_test"),
        prepare=prepare,
    )


def _load_dir(path: Path, image_size: int | None, color_mode: str) -> RawData:
    """Images in one subfolder per class, read with ``keras.utils.image_dataset_from_directory``
    (labels are the subfolders in alphabetical order), resized to ``image_size`` (Keras's 256
    if not given) and scaled to 0..1."""
    if not path.is_dir():
        raise DatasetError(
            f"image folder {str(path)!r} does not exist; expected one subfolder of images per class"
        )
    classes = sorted(child.name for child in path.iterdir() if child.is_dir())
    if len(classes) < 2:
        raise DatasetError(
            f"image folder {str(path)!r} has {len(classes)} class subfolder(s) "
            f"({', '.join(classes) or 'none'}); expected one subfolder of images per class, at least two"
        )
    import keras

    size = (image_size, image_size) if image_size else (256, 256)
    try:
        stream = keras.utils.image_dataset_from_directory(
            str(path),
            label_mode="int",
            color_mode=color_mode,
            image_size=size,
            batch_size=256,
            shuffle=False,
            verbose=False,
        )
        batches = [(np.asarray(x), np.asarray(y)) for x, y in stream]
    except Exception as exc:  # no images, an unreadable file: Keras and TensorFlow raise several kinds
        raise DatasetError(f"image folder {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    if not batches:
        raise DatasetError(f"image folder {str(path)!r} holds no images Keras can read (jpeg, png, bmp, gif)")
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    return RawData(x_train=x, y_train=y, x_test=None, y_test=None, prepare=_scale_pixels)


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


def _scale_pixels(x: np.ndarray) -> np.ndarray:
    """Pixels 0..255 (as Keras reads image files) to 0..1; images keep their channel axis."""
    return x.astype(np.float32) / 255.0


def _scale_grayscale_bytes(x: np.ndarray) -> np.ndarray:
    """MNIST/Fashion-MNIST bytes to 0..1, as the seeds do (``/ 255.0``), with a channel axis."""
    return (x.astype(np.float32) / 255.0)[..., np.newaxis]


def _as_float32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32)


# The file scikit-learn ships each bundled table in (what a tracked dataset names as its source).
SKLEARN_FILES = {
    "digits": "digits.csv.gz",
    "breast_cancer": "breast_cancer.csv",
    "diabetes": "diabetes_data_raw.csv.gz",
}


def source_uri(name: str) -> str:
    """Where dataset ``name``'s data comes from, for tracking, as a URI: the ``.npz`` file or
    image folder, the file scikit-learn ships a table in, the address Keras downloads a dataset
    from, or the source file of a dataset function."""
    if is_npz(name):
        return Path(name[len(NPZ_PREFIX) :]).resolve().as_uri()
    if is_dir(name):
        return Path(name[len(DIR_PREFIX) :]).resolve().as_uri()
    if name in SKLEARN_FILES:
        from importlib import resources

        return Path(str(resources.files("sklearn.datasets.data") / SKLEARN_FILES[name])).as_uri()
    if is_dataset_function(name):
        import importlib.util

        spec = importlib.util.find_spec(name.partition(":")[0])
        origin = spec.origin if spec is not None else None
        return Path(origin).resolve().as_uri() if origin else name
    from experiments.keras_cache import CACHE_FILES

    files = CACHE_FILES.get(name)
    return files[0].origin if files else name
