"""Workarounds for bugs of the Keras this project runs on; each one checks that the bug is
there before it steps in, so that a Keras that fixed it runs as it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["cache_saving_skipsets"]


def cache_saving_skipsets() -> bool:
    """Keep `keras.src.saving.saving_lib.get_attr_skipset`'s answers; True when it was needed.

    Keras 3.15 looks the answer up under ``saving_attr_skiplist_<type>`` but stores it under
    ``saving_attr_skipset_<type>``, so the lookup never hits and every `.keras` save builds
    throwaway Layer, Optimizer and Metric objects again for each object it writes: a small
    MLP's save took 13-21 ms, 9-10 ms with the answers kept (the 2-core CPU). The answer
    depends only on the type's name (the attributes of a fresh object of that kind).
    """
    try:
        from keras.src.backend.common import global_state
        from keras.src.saving import saving_lib
    except ImportError:  # a Keras that moved these: nothing to mend here
        return False
    original = getattr(saving_lib, "get_attr_skipset", None)
    if original is None or getattr(original, "keeps_answers", False):
        return False
    original("Layer")
    if global_state.get_global_attribute("saving_attr_skiplist_Layer") is not None:
        return False  # Keras finds its own answers again: fixed
    saving_lib.get_attr_skipset = _kept(original)
    return True


def _kept(original: Callable[[str], Any]) -> Callable[[str], Any]:
    answers: dict[str, Any] = {}

    def get_attr_skipset(obj_type: str) -> Any:
        if obj_type not in answers:
            answers[obj_type] = original(obj_type)
        return answers[obj_type]

    get_attr_skipset.keeps_answers = True  # type: ignore[attr-defined]
    return get_attr_skipset
