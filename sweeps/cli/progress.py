"""The live display of `sweep run`: trial i/N, best so far, elapsed time."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class SweepProgress:
    """A rich progress bar on stderr, advanced by the runner's `on_trial` hook."""

    def __init__(self, name: str, trials: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("trial"),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn("failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task(name, total=trials, best="-", failed=0)

    def __enter__(self) -> SweepProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, counts: dict[str, int], counted: int, best: float | None) -> None:
        self._progress.update(
            self._task,
            completed=counted,
            best="-" if best is None else f"{best:.4f}",
            failed=counts.get("failed", 0),
        )
