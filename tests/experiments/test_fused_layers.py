"""Fused layers on their own: `StackedDropout` drops each branch at its own rate."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from experiments.fused.layers import StackedDropout

RATES = (0.0, 0.25, 0.5)


def test_each_branch_drops_at_its_own_rate_and_keeps_the_expected_value() -> None:
    layer = StackedDropout(RATES, seed=3)
    inputs = np.ones((len(RATES), 512, 64), dtype="float32")
    out = keras.ops.convert_to_numpy(layer(inputs, training=True))
    for branch, rate in enumerate(RATES):
        kept = out[branch] != 0
        assert abs(1 - kept.mean() - rate) < 0.02
        np.testing.assert_allclose(out[branch][kept], 1 / (1 - rate), rtol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(inputs, training=False)), inputs)
    again = keras.ops.convert_to_numpy(layer(inputs, training=True))
    assert not np.array_equal(again, out)  # a new mask every step


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's random algorithms")
def test_the_noise_is_drawn_with_philox_so_that_xla_computes_it_fast() -> None:
    """TensorFlow's default algorithm is ThreeFry under XLA, which takes about 20x as long on a
    CPU (14.5 ms a step against 0.74 ms for a pack of 12 MLP(100) branches at batch 32)."""
    import tensorflow as tf

    layer = StackedDropout(RATES, seed=3)
    inputs = tf.ones((len(RATES), 32, 8))
    layer.build(inputs.shape)  # as a pack builds its layers before the step is traced
    step = tf.function(lambda x: layer(x, training=True), jit_compile=True)
    graph = step.get_concrete_function(inputs).graph
    draws = [op for op in graph.get_operations() if op.type.startswith("StatelessRandomUniform")]
    assert draws
    for op in draws:
        algorithm = op.inputs[-1].op  # the algorithm input, a constant
        assert tf.get_static_value(algorithm.outputs[0]) == tf.random.Algorithm.PHILOX.value
    out = step(inputs).numpy()
    assert abs((out[2] == 0).mean() - 0.5) < 0.1 and (out[0] == 1).all()
