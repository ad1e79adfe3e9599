"""The user's own code by name: ``package.module:function`` imported from the working
directory or PYTHONPATH, for model builders, datasets, losses and metrics alike."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_object"]


def load_object(name: str, what: str, error: type[Exception]) -> Any:
    """The object ``name`` (``package.module:attribute``) names, or ``error`` saying why not.

    ``what`` is how messages call it ("user builder", "dataset function", ...).
    """
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(
            f"{what} {name!r}: cannot import module {module_name!r} ({exc}); expected "
            "'package.module:function' importable from the working directory or PYTHONPATH"
        ) from exc
    found = getattr(module, attribute, None)
    if not callable(found):
        raise error(f"{what} {name!r}: module {module_name!r} has no function {attribute!r}")
    return found
