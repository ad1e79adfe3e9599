"""Image array transforms in numpy, so data preparation needs no backend."""

from __future__ import annotations

import numpy as np

__all__ = ["per_image_standardization", "resize_bilinear"]


def per_image_standardization(x: np.ndarray) -> np.ndarray:
    """Scale each image to zero mean and unit variance, as ``tf.image`` does.

    The deviation is floored at ``1/sqrt(pixels)`` so that a uniform image does not divide
    by zero (the same floor as ``tf.image.per_image_standardization``, seed 000).
    """
    x = x.astype(np.float32, copy=False)
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    floor = np.float32(1.0 / np.sqrt(np.prod(x.shape[1:])))
    return (x - mean) / np.maximum(std, floor)


def resize_bilinear(x: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(N, H, W, C)`` to ``(N, size, size, C)``, bilinear with half-pixel centers."""
    x = x.astype(np.float32, copy=False)
    return _resize_axis(_resize_axis(x, size, axis=1), size, axis=2)


def _resize_axis(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    n = x.shape[axis]
    if n == size:
        return x
    src = np.clip((np.arange(size) + 0.5) * (n / size) - 0.5, 0, n - 1)
    lo = np.floor(src).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = size
    w = (src - lo).astype(np.float32).reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - w) + np.take(x, hi, axis=axis) * w
