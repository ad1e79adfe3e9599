from __future__ import annotations

import numpy as np
import pytest

from experiments.images import per_image_standardization, resize_bilinear


def test_standardization_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    expected = tf.image.per_image_standardization(x).numpy()
    np.testing.assert_allclose(per_image_standardization(x), expected, atol=1e-5)


def test_standardization_of_a_uniform_image_is_zero_not_nan():
    x = np.full((1, 4, 4, 3), 7, dtype=np.uint8)
    assert np.array_equal(per_image_standardization(x), np.zeros((1, 4, 4, 3), np.float32))


@pytest.mark.parametrize("size", [28, 5])
def test_resize_matches_tensorflow_bilinear(size: int):
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(0).random((3, 8, 8, 1)).astype(np.float32)
    expected = tf.image.resize(x, (size, size), method="bilinear").numpy()
    out = resize_bilinear(x, size)
    assert out.shape == (3, size, size, 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)
