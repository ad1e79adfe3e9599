"""Workarounds of Keras bugs: they mend what is broken and change nothing a save writes."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras.src.saving import saving_lib

import experiments.training  # noqa: F401  (applies the workaround, as every trial does)
from experiments.keras_fixes import cache_saving_skipsets


def test_a_save_builds_its_reference_objects_once(tmp_path: Path, monkeypatch) -> None:
    """Keras 3.15 stores `get_attr_skipset`'s answer under another key than it reads, so each
    save built a throwaway Layer for every layer it wrote; kept, the next saves build none."""
    built: list[int] = []
    original_init = keras.layers.Layer.__init__

    def counting_init(self, *args, **kwargs):
        if type(self) is keras.layers.Layer:
            built.append(1)
        original_init(self, *args, **kwargs)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.save(tmp_path / "first.keras")
    monkeypatch.setattr(keras.layers.Layer, "__init__", counting_init)
    model.save(tmp_path / "second.keras")
    assert built == []
    assert cache_saving_skipsets() is False  # applied once, not wrapped again
    loaded = keras.models.load_model(tmp_path / "second.keras")
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert saving_lib.get_attr_skipset("Layer") is saving_lib.get_attr_skipset("Layer")
