"""Typed errors: each says what was given and what was expected, in one line."""

from __future__ import annotations


class SweepError(Exception):
    """Base of the errors the CLI turns into one line and exit code 2."""


class SpecError(SweepError, ValueError):
    """A sweep spec that cannot be run: names the field, the value and what is allowed."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"spec {source}: {message}" if source else f"spec: {message}")


class TrialFailed(SweepError):
    """A trial that could not give a value; it is recorded and the sweep goes on."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")


class ReportError(SweepError):
    """A report that cannot be written: an unknown sweep, a store without it, nothing to retrain."""


class SweepFailed(SweepError):
    """The sweep could not go on (too many failed trials in a row, a worker died): exit code 1."""


class StoreError(SweepError):
    """A store (MLflow, or the engine's Optuna storage or KerasTuner project) that cannot be
    used, or that failed mid-sweep: names the store, its URI and the cause."""


class SpecChanged(SweepError):
    """A sweep re-run with a spec whose search differs from the one it was started with."""
