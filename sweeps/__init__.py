"""sweeplab's search side: the spec, the search space, the engines and the `sweep` CLI.

From Python (for notebooks):

    >>> import sweeps
    >>> result = sweeps.run("quickstart", trials=3)  # doctest: +SKIP
    >>> result.best_config, result.best_value  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweeps.errors import SpecError, SweepError
from sweeps.spec.schema import Spec, load_spec

if TYPE_CHECKING:
    from sweeps.running.runner import SweepResult

__all__ = ["Spec", "SpecError", "SweepError", "SweepResult", "load_spec", "run"]


def run(spec: Any = "quickstart", **kwargs: Any) -> SweepResult:
    """Run a sweep from a spec path, built-in name, mapping or `Spec`; see `sweeps.running.runner.run`."""
    from sweeps.running.runner import run as _run

    return _run(spec, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "SweepResult":
        from sweeps.running.runner import SweepResult

        return SweepResult
    raise AttributeError(name)
