from __future__ import annotations

import keras
import pytest

from experiments.optimizers import DEFAULT_MOMENTUM, make_optimizer, momentum_of


@pytest.mark.parametrize(
    ("name", "cls", "momentum", "nesterov"),
    [
        ("sgd", keras.optimizers.SGD, 0.0, False),
        ("momentum", keras.optimizers.SGD, DEFAULT_MOMENTUM, False),
        ("nesterov", keras.optimizers.SGD, DEFAULT_MOMENTUM, True),
        ("rmsprop", keras.optimizers.RMSprop, None, None),
        ("adagrad", keras.optimizers.Adagrad, None, None),
        ("adam", keras.optimizers.Adam, None, None),
    ],
)
def test_each_optimizer(name: str, cls: type, momentum: float | None, nesterov: bool | None):
    optimizer = make_optimizer(name, 0.05)
    assert type(optimizer) is cls
    assert float(optimizer.learning_rate) == pytest.approx(0.05)
    if momentum is not None:
        assert optimizer.momentum == momentum and optimizer.nesterov is nesterov


@pytest.mark.parametrize("name", ["momentum", "nesterov"])
def test_given_momentum_is_used_even_zero(name: str):
    assert make_optimizer(name, 0.1, momentum=0.5).momentum == 0.5
    assert make_optimizer(name, 0.1, momentum=0.0).momentum == 0.0


def test_the_momentum_a_rule_steps_with():
    """What a fused branch and its checkpoint give each rule: the same as `make_optimizer`."""
    for name in ("sgd", "rmsprop", "adagrad", "adam"):
        assert momentum_of(name, None) == 0.0
    for name in ("momentum", "nesterov"):
        assert momentum_of(name, None) == make_optimizer(name, 0.1).momentum == DEFAULT_MOMENTUM
        assert momentum_of(name, 0.0) == 0.0 and momentum_of(name, 0.5) == 0.5


def test_momentum_for_an_optimizer_without_one_is_rejected():
    with pytest.raises(ValueError, match="momentum=0.9 applies only to .*got optimizer 'adam'"):
        make_optimizer("adam", 0.1, momentum=0.9)


def test_unknown_optimizer_names_the_choices():
    with pytest.raises(ValueError, match=r"'adamw'.*did you mean 'adam'.*sgd, momentum, nesterov"):
        make_optimizer("adamw", 0.1)
