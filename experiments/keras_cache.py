"""The keras.datasets loaders, and where their cache lies when the network is not there.

Keras downloads into ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``) and reads the
cache without the network only when the file there passes its hash check (MNIST, CIFAR-10;
Fashion-MNIST has no hash). On a machine without internet the user must put the files at
exactly those paths, so the error says which files and where.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.errors import DatasetError

__all__ = ["CACHE_FILES", "cache_paths", "keras_datasets_dir", "load_keras_dataset"]

_KERAS_BUCKET = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
# A download that stalls must end in the error below, not hang a sweep's worker.
_DOWNLOAD_SOCKET_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class CacheFile:
    """One file a Keras loader reads: its path under ``datasets/`` and where to get it."""

    relative_path: str
    origin: str


# As in keras/src/datasets/{mnist,fashion_mnist,cifar10}.py (Keras 3): CIFAR-10's archive is
# stored under the name "cifar-10-batches-py-target_archive" and extracted next to it.
CACHE_FILES: dict[str, tuple[CacheFile, ...]] = {
    "mnist": (CacheFile("mnist.npz", _KERAS_BUCKET + "mnist.npz"),),
    "fashion_mnist": tuple(
        CacheFile(f"fashion-mnist/{name}", _KERAS_BUCKET + name) for name in _FASHION_FILES
    ),
    "cifar10": (
        CacheFile(
            "cifar-10-batches-py-target_archive",
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        ),
    ),
}


def keras_datasets_dir() -> Path:
    """The folder ``keras.utils.get_file`` caches datasets in, resolved as Keras does.

    Keras reads ``KERAS_HOME`` once, when it is imported, and falls back to
    ``/tmp/.keras`` when that folder is not writable.
    """
    try:
        from keras.src.backend.config import keras_home  # the value get_file itself uses

        home = keras_home()
    except ImportError:  # a Keras that moved its private accessor: the documented rule
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    base = os.path.expanduser(home)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(base) / "datasets"


def cache_paths(name: str) -> list[Path]:
    """The absolute paths of the files dataset ``name`` needs in the Keras cache."""
    root = keras_datasets_dir()
    return [root / f.relative_path for f in CACHE_FILES[name]]


def load_keras_dataset(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` as keras.datasets returns them (uint8).

    Raises:
        DatasetError: the files are neither cached nor downloadable; the message names
            the missing files, the path to put each at, and the ``npz:PATH`` alternative.
    """
    # Looked at before Keras runs: a cached file that fails the hash check is deleted by
    # Keras's failed re-download, and the message should say it was there.
    cached_before = [path.exists() for path in cache_paths(name)]
    try:
        with _socket_timeout(_DOWNLOAD_SOCKET_TIMEOUT_S):
            (x_train, y_train), (x_test, y_test) = _loader(name)()
    except Exception as exc:  # any failure here means "not available offline"
        raise DatasetError(_unavailable_message(name, exc, cached_before)) from exc
    return x_train, y_train, x_test, y_test


def _loader(name: str) -> Callable[[], tuple]:
    import keras

    return {
        "mnist": keras.datasets.mnist.load_data,
        "fashion_mnist": keras.datasets.fashion_mnist.load_data,
        "cifar10": keras.datasets.cifar10.load_data,
    }[name]


def _unavailable_message(name: str, exc: Exception, cached_before: list[bool]) -> str:
    lines = [f"dataset {name!r} could not be loaded from the Keras cache or downloaded ({exc})."]
    lines.append("Download each file below and put it at the path shown:")
    for file, path, cached in zip(CACHE_FILES[name], cache_paths(name), cached_before, strict=True):
        if cached:
            note = "  (a cached file was there; Keras rejects one whose hash does not match)"
        elif path.exists():
            note = "  (present)"
        else:
            note = "  (missing)"
        lines.append(f"  {file.origin} -> {path}{note}")
    lines.append(
        "Or pass your own arrays as 'npz:PATH' (a .npz with x_train, y_train and "
        "optionally x_val, y_val, x_test, y_test)."
    )
    return "\n".join(lines)


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound each socket read of a download (urlretrieve has no timeout of its own)."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
