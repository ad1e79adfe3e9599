"""How a pack is laid out (pure NumPy): padding is exact, groups merge only while padding is cheap,
and the number of steps per call into Keras."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.dispatch import AUTO_STEPS_PER_EXECUTION, resolve_steps_per_execution
from experiments.errors import ConfigError
from experiments.fused.plan import plan_groups, solo_views, stackable_family


def mlp_shapes(units: int, inputs: int = 64, classes: int = 10) -> list[tuple[int, ...]]:
    return [(inputs, units), (units,), (units, classes), (classes,)]


def cnn_shapes(filters: tuple[int, int], units: int, size: int = 3) -> list[tuple[int, ...]]:
    f1, f2 = filters
    return [
        (size, size, 1, f1),
        (f1,),
        (size, size, f1, f2),
        (f2,),
        (7 * 7 * f2, units),
        (units,),
        (units, 10),
        (10,),
    ]


def test_a_weight_padded_into_a_row_comes_back_unchanged() -> None:
    (group,) = plan_groups("cnn", [0, 1], [cnn_shapes((8, 16), 32), cnn_shapes((6, 12), 30)], (28, 28, 1))
    assert group.pack_views[4] == (7, 7, 16, 32)  # the first dense kernel padded per axis
    rng = np.random.default_rng(0)
    for shape, slot in zip(
        cnn_shapes((6, 12), 30), group.slots(cnn_shapes((6, 12), 30), (28, 28, 1)), strict=True
    ):
        value = rng.standard_normal(shape).astype("float32")
        row = slot.embed(value)
        assert row.shape == slot.row_shape and np.count_nonzero(row) == value.size
        np.testing.assert_array_equal(slot.extract(row), value)
    # The flattened features of a narrower branch land where its channels are, as Flatten orders them.
    slot = group.slots(cnn_shapes((6, 12), 30), (28, 28, 1))[4]
    kernel = np.zeros((7 * 7 * 12, 30), "float32")
    kernel[1 * 12 + 5, 3] = 1.0  # (h=0, w=1, channel 5) -> unit 3
    assert np.argwhere(slot.embed(kernel)).tolist() == [[1 * 16 + 5, 3]]


def test_groups_merge_while_padding_is_cheap() -> None:
    shapes = [mlp_shapes(100), mlp_shapes(96), mlp_shapes(90), mlp_shapes(20)]
    groups = plan_groups("mlp", [0, 1, 2, 3], shapes, (8, 8, 1))
    assert sorted(g.members for g in groups) == [(0, 1, 2), (3,)]
    assert {g.members: g.pack_views[0] for g in groups}[(0, 1, 2)] == (64, 100)


def test_depth_and_kernel_size_are_never_padded() -> None:
    shapes = [cnn_shapes((8, 16), 32), cnn_shapes((8, 16), 32, size=5)]
    assert len(plan_groups("cnn", [0, 1], shapes, (28, 28, 1))) == 2
    assert stackable_family("cnn", 8) == "cnn" and stackable_family("mlp", 6) is None
    assert stackable_family("alexnet", 4) is None
    assert solo_views("mlp", mlp_shapes(5), (8, 8, 1)) == mlp_shapes(5)


@pytest.mark.parametrize(
    ("setting", "samples", "backend", "expected"),
    [
        ("auto", 1437, "tensorflow", AUTO_STEPS_PER_EXECUTION),
        ("auto", 300, "tensorflow", 10),  # never more than an epoch's steps
        ("auto", 1437, "torch", 1),  # Keras's PyTorch trainer runs one step per call
        (8, 1437, "jax", 8),
        (100, 64, "tensorflow", 2),
    ],
)
def test_steps_per_execution(setting: object, samples: int, backend: str, expected: int) -> None:
    assert resolve_steps_per_execution(setting, n_samples=samples, batch_size=32, backend=backend) == expected


@pytest.mark.parametrize(
    ("setting", "message"), [(8, "PyTorch backend runs one step"), (0, "'auto' or an integer")]
)
def test_steps_per_execution_errors(setting: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_steps_per_execution(setting, n_samples=100, batch_size=10, backend="torch")
