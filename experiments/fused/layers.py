"""Fused layers: K layers of the same shape computed as one (horizontal fusion, HFTA).

Activations of a fused stack carry the branch axis first, ``(K, batch, ...)``, except for
convolutions, whose K branches sit side by side on the channel axis, ``(batch, H, W, K*C)``, so
that one (grouped) convolution computes them all. Each layer keeps one kernel and one bias
for all K branches, whatever their optimizers (`experiments.fused.optimizer` updates each
branch by its own rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

__all__ = ["BranchFlatten", "StackBranches", "StackedConv2D", "StackedDense", "StackedDropout"]


class _Stacked(keras.layers.Layer):
    """A kernel and a bias holding `branches` layers side by side.

    `branch_axes` says on which axis of the kernel and of the bias the branches sit.
    """

    branch_axes = (0, 0)

    def __init__(self, branches: int, activation: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.branches = int(branches)
        self.activation = keras.activations.get(activation)

    def _add(self, kernel_shape: tuple[int, ...], bias_shape: tuple[int, ...]) -> None:
        self.kernel = self.add_weight(shape=kernel_shape, initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=bias_shape, initializer="zeros", name="bias")


class StackedDense(_Stacked):
    """K Dense layers as one matmul; the output is ``(K, batch, units)``, or ``(batch, K, units)``
    with ``batch_major`` (a pack's output).

    ``shared_input``: the input is ``(batch, in)``, the same for every branch (a pack's first
    layer), and the kernel is kept as ``(in, K, units)`` so that the K layers are one plain
    matmul ``(batch, in) @ (in, K*units)``. Otherwise the input is ``(K, batch, in)``, the
    kernel ``(K, in, units)``, one batched matmul. The bias is ``(K, units)``, always added to
    ``(batch, K*units)``: its gradient is then summed over the batch in the same order as a solo
    Dense layer's, to the last bit.
    """

    def __init__(
        self, branches: int, units: int, shared_input: bool = False, batch_major: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(branches, **kwargs)
        self.units = int(units)
        self.shared_input = shared_input
        self.batch_major = batch_major
        self.branch_axes = (1, 0) if shared_input else (0, 0)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        fan_in, k, units = int(input_shape[-1]), self.branches, self.units
        self._add((fan_in, k, units) if self.shared_input else (k, fan_in, units), (k, units))

    def call(self, inputs: Any) -> Any:
        k, units = self.branches, self.units
        if self.shared_input:
            flat = ops.matmul(inputs, ops.reshape(self.kernel, (self.kernel.shape[0], k * units)))
            flat = ops.add(flat, ops.reshape(self.bias, (k * units,)))
            outputs = ops.reshape(flat, (-1, k, units))
        else:
            flat = ops.reshape(ops.transpose(ops.matmul(inputs, self.kernel), (1, 0, 2)), (-1, k * units))
            outputs = ops.reshape(ops.add(flat, ops.reshape(self.bias, (k * units,))), (-1, k, units))
        outputs = self.activation(outputs)
        return outputs if self.batch_major else ops.transpose(outputs, (1, 0, 2))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        batch = input_shape[0] if self.shared_input else input_shape[1]
        return (batch, self.branches, self.units) if self.batch_major else (self.branches, batch, self.units)


class StackedConv2D(_Stacked):
    """K Conv2D(same) layers over ``(batch, H, W, K*C)``, the branches side by side on channels.

    The first layer of a pack (``shared_input``) sees the shared image: one convolution with
    K*filters output channels. A later layer reads each branch's own channels: K convolutions
    of the solo layer's shape, joined on the channel axis. Measured on the 2-core CPU (K=6,
    14x14x32 -> 64 at batch 32, forward and backward): 33 ms so, 35 ms as one grouped
    `tf.nn.conv2d`, 1.7 s through `keras.ops.conv`, which compiles grouped convolutions with
    XLA on a CPU. The kernel is kept as ``(K, kh, kw, in, filters)``.
    """

    def __init__(
        self, branches: int, filters: int, kernel_size: int, shared_input: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(branches, **kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.shared_input = shared_input

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels = int(input_shape[-1])
        per_branch = channels if self.shared_input else channels // self.branches
        k, size = self.branches, self.kernel_size
        self._add((k, size, size, per_branch, self.filters), (k, self.filters))

    def call(self, inputs: Any) -> Any:
        k, size, _, cin, filters = self.kernel.shape
        if self.shared_input:
            kernel = ops.reshape(ops.transpose(self.kernel, (1, 2, 3, 0, 4)), (size, size, cin, k * filters))
            outputs = ops.conv(inputs, kernel, strides=1, padding="same")
        else:
            own = ops.split(inputs, k, axis=-1)
            kernels = ops.unstack(self.kernel, axis=0)
            outputs = ops.concatenate(
                [ops.conv(x, w, strides=1, padding="same") for x, w in zip(own, kernels, strict=True)],
                axis=-1,
            )
        return self.activation(ops.add(outputs, ops.reshape(self.bias, (k * filters,))))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.branches * self.filters)


class StackedDropout(keras.layers.Layer):
    """Dropout with each branch's own rate over ``(K, batch, ...)``; a rate of 0 is the identity.

    The rates are a (non-trainable) variable, so that a compiled pack can take new branches.
    """

    def __init__(self, rates: Sequence[float], seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.initial_rates = tuple(float(r) for r in rates)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.rates = self.add_weight(
            shape=(len(self.initial_rates),), initializer="zeros", trainable=False, name="rates"
        )
        self.rates.assign(self.initial_rates)

    def restart(self, rates: Sequence[float], seed: int) -> None:
        """New branches' rates, the noise drawn from the start of `seed`'s stream as a new
        layer's is: a compiled pack that takes new branches then draws the noise a pack built
        for them would, not whatever followed the last pack's draws (which made the same sweep
        run twice in one process give other results)."""
        self.rates.assign([float(r) for r in rates])
        self.seed_generator.state.assign([seed, 0])

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training:
            return inputs
        shape = (len(self.initial_rates),) + (1,) * (len(inputs.shape) - 1)
        rates = ops.reshape(ops.cast(self.rates, inputs.dtype), shape)
        noise = _uniform(ops.shape(inputs), self.seed_generator, inputs.dtype)
        keep = ops.cast(ops.greater_equal(noise, rates), inputs.dtype)
        return ops.divide(ops.multiply(inputs, keep), ops.subtract(1.0, rates))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


def _uniform(shape: Any, seed: keras.random.SeedGenerator, dtype: Any) -> Any:
    """Uniform noise in [0, 1); on TensorFlow drawn with Philox by name.

    TensorFlow's default algorithm ("auto_select") is Philox in a plain step but ThreeFry under
    XLA, and XLA's ThreeFry on a CPU is slow: noise for a pack of 12 MLP(100) branches at batch
    32 took 14.5 ms a step under XLA, 0.74 ms with Philox (0.6 ms without XLA). Without XLA the
    numbers are the same as "auto_select"'s.
    """
    if keras.backend.backend() != "tensorflow":
        return keras.random.uniform(shape, seed=seed, dtype=dtype)
    import tensorflow as tf

    pair = tf.cast(tf.math.floormod(seed.next(), tf.int32.max - 1), tf.int32)  # as Keras casts it
    return tf.random.stateless_uniform(shape, seed=pair, dtype=dtype, alg="philox")


class BranchFlatten(keras.layers.Layer):
    """``(batch, H, W, K*C)`` -> ``(K, batch, H*W*C)``: each branch flattened as Flatten would."""

    def __init__(self, branches: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.branches = int(branches)

    def call(self, inputs: Any) -> Any:
        _, height, width, channels = inputs.shape
        per_branch = channels // self.branches
        x = ops.reshape(inputs, (-1, height, width, self.branches, per_branch))
        x = ops.transpose(x, (3, 0, 1, 2, 4))
        return ops.reshape(x, (self.branches, -1, height * width * per_branch))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        _, height, width, channels = input_shape
        return (self.branches, input_shape[0], height * width * (channels // self.branches))


class StackBranches(keras.layers.Layer):
    """Outputs of separate branches, ``[(batch, C)] * K`` -> ``(batch, K, C)``."""

    def call(self, inputs: Sequence[Any]) -> Any:
        return ops.stack(list(inputs), axis=1)

    def compute_output_shape(self, input_shape: Sequence[tuple[int | None, ...]]) -> tuple[int | None, ...]:
        first = input_shape[0]
        return (first[0], len(input_shape), *first[1:])
