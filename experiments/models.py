"""``build_model``: one entry point for the built-in networks and user builders.

A user builder is named ``"package.module:function"`` and is called as
``function(input_shape=..., num_classes=..., dropout=..., **options)``, plus ``task=`` and
``output_shape=`` when it takes them (named, or through ``**kwargs``); ``num_classes`` is the
number of output units (the classes; 1 for binary; the target's size for regression). It must
return an uncompiled ``keras.Model`` whose output has ``output_shape`` (and, for mixed
precision, a float32 output layer).

Example:
    >>> model = build_model("mlp", (28, 28, 1), 10, dropout=0.3, units=100)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras

from experiments import architectures
from experiments.architectures import ALEXNET_MIN_INPUT_SIZE
from experiments.errors import ModelError, did_you_mean
from experiments.imports import load_object
from experiments.registry import MODEL_OPTIONS, MODELS, is_user_builder
from experiments.tasks import TASKS

__all__ = ["ModelError", "build_model"]

_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "mlp": architectures.mlp,
    "cnn": architectures.cnn,
    "alexnet": architectures.alexnet,
}


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    dropout: float = 0.0,
    task: str = "classification",
    output_shape: tuple[int, ...] | None = None,
    **options: Any,
) -> keras.Model:
    """An uncompiled model for ``name`` (see `experiments.registry.MODELS`) or a user builder,
    ending in the head ``task`` needs, of ``output_shape`` (default: one unit per class).

    Raises:
        ModelError: unknown name or option, an option value the network cannot use, or a
            user builder that cannot be imported, raises, does not return a ``keras.Model``,
            or returns one whose output does not have ``output_shape``.
    """
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"dropout must be in [0, 1); got {dropout!r}")
    if task not in TASKS:
        raise ModelError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    input_shape = tuple(input_shape)
    output_shape = tuple(output_shape or (num_classes,))
    if is_user_builder(name):
        return _build_user(name, input_shape, task, output_shape, dropout, options)
    if name not in _BUILDERS:
        raise ModelError(
            f"unknown model {name!r}{did_you_mean(name, MODELS)}; expected one of "
            f"{', '.join(MODELS)} or a user builder 'package.module:function'"
        )
    _check_options(name, input_shape, options)
    return _BUILDERS[name](
        input_shape, math.prod(output_shape), dropout=dropout, task=task, output_shape=output_shape, **options
    )


def _check_options(name: str, input_shape: tuple[int, ...], options: dict[str, Any]) -> None:
    """Fail before Keras does, with the option's name, value and what would work."""
    allowed = MODEL_OPTIONS[name]
    for key in options:
        if key not in allowed:
            raise ModelError(
                f"model {name!r} has no option {key!r}{did_you_mean(key, allowed)}; "
                f"its options are: {', '.join(allowed)}"
            )
    for key in ("units", "kernel_size", "input_size"):
        if key in options:
            _positive_int(name, key, options[key])
    filters = options.get("filters", (32, 64))
    if isinstance(filters, str | bytes) or not isinstance(filters, Sequence) or not filters:
        raise ModelError(f"model {name!r}: filters must be a non-empty list; got {filters!r}")
    for f in filters:
        _positive_int(name, "filters", f)
    width = options.get("width", 1.0)
    if isinstance(width, bool) or not isinstance(width, int | float) or width <= 0:
        raise ModelError(f"model {name!r}: width must be a number > 0; got {width!r}")
    if name in ("cnn", "alexnet"):
        _check_image_input(name, input_shape, len(filters), options.get("input_size", 227))


def _check_image_input(name: str, input_shape: tuple[int, ...], n_filters: int, input_size: int) -> None:
    if len(input_shape) != 3:
        raise ModelError(
            f"model {name!r} needs images of shape (height, width, channels); got input shape {input_shape}"
        )
    if name == "cnn" and min(input_shape[:2]) < 2**n_filters:
        raise ModelError(
            f"model 'cnn' halves the image once per filters entry ({n_filters}); input shape "
            f"{input_shape} needs at least {2**n_filters}x{2**n_filters} pixels (use fewer "
            "filters or the dataset's image_size)"
        )
    if name == "alexnet" and input_size < ALEXNET_MIN_INPUT_SIZE:
        raise ModelError(
            f"model 'alexnet': input_size={input_size} is too small for its valid "
            f"convolution and poolings; the minimum is {ALEXNET_MIN_INPUT_SIZE}"
        )


def _positive_int(model: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"model {model!r}: {key} must be an integer >= 1; got {value!r}")


def _build_user(
    name: str,
    input_shape: tuple[int, ...],
    task: str,
    output_shape: tuple[int, ...],
    dropout: float,
    options: dict[str, Any],
) -> keras.Model:
    builder = load_object(name, "user builder", ModelError)
    arguments = {
        "input_shape": input_shape,
        "num_classes": math.prod(output_shape),
        "dropout": dropout,
        **options,
    }
    for key, value in (("task", task), ("output_shape", output_shape)):
        if _takes(builder, key):
            arguments[key] = value
    try:
        model = builder(**arguments)
    except Exception as exc:  # the builder's own error for this config: it would raise again
        raise ModelError(f"user builder {name!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, keras.Model):
        raise ModelError(f"user builder {name!r} returned {type(model).__name__}; expected a keras.Model")
    got = tuple(model.output_shape[1:]) if not isinstance(model.output_shape, list) else None
    if got != output_shape:
        raise ModelError(
            f"user builder {name!r} returned a model with output shape {got}; task {task} needs "
            f"{output_shape} (the builder may take output_shape= to read it)"
        )
    return model


def _takes(function: Callable[..., Any], key: str) -> bool:
    """Whether ``function`` accepts the keyword ``key`` (by name or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return key in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
