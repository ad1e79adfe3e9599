"""A branch's best-only checkpoint: a standalone `.keras` model of that branch alone.

The branch is rebuilt as its solo trial builds it (same builder, options and compile step),
given its best epoch's weights and optimizer state (slots and step count), and saved: the file
a solo trial's ModelCheckpoint leaves, loadable with `keras.models.load_model`. A built-in
model is built once per architecture and reused for the branches after it (its dropout rate
set to theirs), and so is its optimizer per update rule (its learning rate and momentum set to
the branch's; building an optimizer's slot variables cost more than the save itself); a user's
builder is called for every checkpoint.
"""

from __future__ import annotations

import os

import keras

from experiments.fused.model import BranchState
from experiments.fused.optimizer import SLOT_ATTRIBUTES
from experiments.models import build_model
from experiments.optimizers import make_optimizer, momentum_of
from experiments.registry import MOMENTUM_OPTIMIZERS, is_user_builder
from experiments.training import TrainConfig, compile_model, precision_policy

__all__ = ["write_checkpoint"]

Optimizers = dict[tuple[str, bool], keras.optimizers.Optimizer]  # (rule, with momentum) -> built
_carriers: dict[tuple, tuple[keras.Model, Optimizers]] = {}


def _carrier(
    config: TrainConfig, input_shape: tuple[int, ...], num_classes: int
) -> tuple[keras.Model, Optimizers]:
    key = (
        config.model,
        repr(sorted(dict(config.model_options).items())),
        config.dropout > 0,
        config.mixed_precision,
        input_shape,
        num_classes,
    )
    carrier = None if is_user_builder(config.model) else _carriers.get(key)
    if carrier is None:
        with precision_policy(config.mixed_precision):
            model = build_model(
                config.model, input_shape, num_classes, dropout=config.dropout, **dict(config.model_options)
            )
        carrier = (model, {})
        if not is_user_builder(config.model):
            _carriers.clear()
            _carriers[key] = carrier
    model = carrier[0]
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = config.dropout
    return carrier


def _optimizer(config: TrainConfig, optimizers: Optimizers, fresh: bool) -> keras.optimizers.Optimizer:
    """The branch's optimizer: the carrier's for its rule, given the branch's hyperparameters, or
    a new one (`fresh`: slots not given, so none may be left from another branch)."""
    momentum = momentum_of(config.optimizer, config.momentum)
    key = (config.optimizer, bool(momentum))  # SGD keeps momentum slots only when momentum > 0
    optimizer = None if fresh else optimizers.get(key)
    if optimizer is None:
        optimizer = make_optimizer(config.optimizer, config.learning_rate, config.momentum)
        optimizers[key] = optimizer
    else:
        optimizer.learning_rate = config.learning_rate
        if config.optimizer in MOMENTUM_OPTIMIZERS:
            optimizer.momentum = momentum
    return optimizer


def write_checkpoint(
    config: TrainConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    state: BranchState,
    iterations: int,
    path: str,
) -> None:
    """Save `state` as the solo model of `config` at `path`."""
    model, optimizers = _carrier(config, input_shape, num_classes)
    compile_model(model, config, optimizer=_optimizer(config, optimizers, fresh=state.slots is None))
    model.set_weights(state.weights)
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # under a loss scale
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    for i, slots in enumerate(state.slots or []):
        for name, attribute in SLOT_ATTRIBUTES[config.optimizer].items():
            held = getattr(optimizer, attribute, None) or []
            if i < len(held) and held[i] is not None:
                held[i].assign(slots[name])
    optimizer.iterations.assign(iterations)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save(path)
