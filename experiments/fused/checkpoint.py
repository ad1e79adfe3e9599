"""A branch's best-only checkpoint: a standalone `.keras` model of that branch alone.

The branch is rebuilt as its solo trial builds it (same builder, options and compile step),
given its best epoch's weights and optimizer state (slots and step count), and saved: the file
a solo trial's ModelCheckpoint leaves, loadable with `keras.models.load_model`. A built-in
model is built once per architecture and reused for the branches after it (its dropout rate
set to theirs); a user's builder is called for every checkpoint.
"""

from __future__ import annotations

import os

import keras

from experiments.fused.model import BranchState
from experiments.fused.optimizer import SLOT_ATTRIBUTES
from experiments.models import build_model
from experiments.registry import is_user_builder
from experiments.training import TrainConfig, compile_model, precision_policy

__all__ = ["write_checkpoint"]

_carriers: dict[tuple, keras.Model] = {}


def _carrier(config: TrainConfig, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    key = (
        config.model,
        repr(sorted(dict(config.model_options).items())),
        config.dropout > 0,
        config.mixed_precision,
        input_shape,
        num_classes,
    )
    model = None if is_user_builder(config.model) else _carriers.get(key)
    if model is None:
        with precision_policy(config.mixed_precision):
            model = build_model(
                config.model, input_shape, num_classes, dropout=config.dropout, **dict(config.model_options)
            )
        if not is_user_builder(config.model):
            _carriers.clear()
            _carriers[key] = model
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = config.dropout
    return model


def write_checkpoint(
    config: TrainConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    state: BranchState,
    iterations: int,
    path: str,
) -> None:
    """Save `state` as the solo model of `config` at `path`."""
    model = _carrier(config, input_shape, num_classes)
    compile_model(model, config)  # a fresh optimizer: the branch's own
    model.set_weights(state.weights)
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # under a loss scale
    optimizer.build(model.trainable_variables)
    for i, slots in enumerate(state.slots or []):
        for name, attribute in SLOT_ATTRIBUTES[config.optimizer].items():
            held = getattr(optimizer, attribute, None) or []
            if i < len(held) and held[i] is not None:
                held[i].assign(slots[name])
    optimizer.iterations.assign(iterations)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save(path)
