"""Typed errors: each message names what was given and what was expected."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["ConfigError", "DatasetError", "DatasetWarning", "ModelError", "did_you_mean"]


class DatasetError(ValueError):
    """A dataset name, file or size that cannot be loaded as asked."""


class DatasetWarning(UserWarning):
    """Data that load and train, but probably not as meant (e.g. class ids with gaps)."""


class ModelError(ValueError):
    """A model name, option or user builder that cannot build a model."""


class ConfigError(ValueError):
    """A training configuration value outside what `train` accepts."""


def did_you_mean(given: str, choices: Iterable[str]) -> str:
    """A ``" (did you mean 'x'?)"`` hint for a near-miss name, else an empty string."""
    close = difflib.get_close_matches(given, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
