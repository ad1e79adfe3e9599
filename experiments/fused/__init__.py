"""Fused trials: K trials trained as one Keras model, each still its own trial.

``train_pack(configs, data, callbacks)`` is `experiments.train` for K configs at once: K
`TrialResult`s out, each as its trial alone would give (see `experiments.fused.pack`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from experiments.fused.pack import SHARED_FIELDS, train_pack

__all__ = ["SHARED_FIELDS", "train_pack"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from experiments.fused import pack

        return getattr(pack, name)
    raise AttributeError(f"module 'experiments.fused' has no attribute {name!r}")
