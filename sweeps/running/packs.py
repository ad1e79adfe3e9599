"""Trials trained together (`train.fuse`), each recorded exactly as a trial run alone.

The engine hands over up to `train.fuse` trials at once. They are grouped by what the data
pipeline depends on (`batch_size`, when it is searched, and the epochs budget) and each group
is trained as one pack by `experiments.fused.train_pack`. Every trial keeps its own nested run,
in the same layout as a solo trial's, plus the tag `sweeplab.pack` (shared by the pack); its
per-epoch metrics stream in while the pack trains, and it is recorded and handed back to the
engine as soon as its branch ends, while the others go on.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from experiments.backends import failure_reason
from sweeps.engines.base import OnPackTrialEnd, PackTrial
from sweeps.errors import TrialFailed
from tracking.tags import PACK

if TYPE_CHECKING:
    from sweeps.running.trial import TrialRunner
    from sweeps.spec.schema import Spec

__all__ = ["OnPackTrialEnd", "PackTrial", "pipeline_key", "run_pack"]


def pipeline_key(spec: Spec, config: Mapping[str, Any]) -> tuple[int, int]:
    """What the trials of one pack must share: the batches they are fed and for how long."""
    return int(config.get("batch_size", spec.train.batch_size)), spec.train.epochs


def run_pack(runner: TrialRunner, trials: Sequence[PackTrial], on_end: OnPackTrialEnd) -> None:
    """Train `trials` in packs of one pipeline each; `on_end` hears of every trial once."""
    groups: dict[tuple[int, int], list[PackTrial]] = {}
    for trial in trials:
        groups.setdefault(pipeline_key(runner.spec, trial.config), []).append(trial)
    for group in groups.values():
        _train_group(runner, group, on_end)


def _train_group(runner: TrialRunner, group: list[PackTrial], on_end: OnPackTrialEnd) -> None:
    pack_id = f"{group[0].number:04d}-{uuid.uuid4().hex[:6]}"
    tags = {PACK: pack_id}
    if len(group) == 1:  # a pack of one is a solo trial
        trial = group[0]
        try:
            outcome = runner(
                trial.number, trial.config, trial.callbacks, trial.pruning, tags=tags, on_run=trial.on_run
            )
        except TrialFailed as exc:
            on_end(trial, exc)
            return
        on_end(trial, outcome)
        return
    _Pack(runner, group, tags, on_end).train()


class _Pack:
    """The runs of one pack's trials, from opening to the last recorded result."""

    def __init__(
        self, runner: TrialRunner, group: list[PackTrial], tags: dict[str, str], on_end: OnPackTrialEnd
    ) -> None:
        self.runner = runner
        self.group = group
        self.on_end = on_end
        self.started = time.perf_counter()
        self.ended: set[int] = set()
        self.recorders = []
        for trial in group:
            recorder = runner.open_run(trial.number, trial.config, tags=tags)
            if trial.on_run is not None:
                trial.on_run(recorder.run_id)
            self.recorders.append(recorder)

    def _fail(self, i: int, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        reason = failure_reason(exc)  # out_of_memory or exception
        self.recorders[i].fail(reason, error, {"trial_seconds": time.perf_counter() - self.started})
        self.ended.add(i)
        self.on_end(self.group[i], TrialFailed(reason, error))

    def train(self) -> None:
        from experiments.fused import train_pack

        jobs, positions = [], []
        for i, (trial, recorder) in enumerate(zip(self.group, self.recorders, strict=True)):
            try:
                jobs.append(self.runner.job(trial.config, recorder.checkpoint_path))
                positions.append(i)
            except Exception as exc:  # a config the training job refuses fails that trial only
                self._fail(i, exc)
        if not jobs:
            return
        callbacks = [[self.recorders[i].callback(), *self.group[i].callbacks] for i in positions]

        def branch_end(j: int, result: Any) -> None:
            i = positions[j]
            if isinstance(result, Exception):
                self._fail(i, result)
                return
            trial = self.group[i]
            try:
                outcome: Any = self.runner.record(
                    self.recorders[i], trial.number, trial.config, result, trial.pruning, self.started
                )
            except TrialFailed as exc:
                outcome = exc
            self.ended.add(i)
            self.on_end(trial, outcome)

        try:
            rules = self.runner.spec.space.optimizers
            train_pack(jobs, self.runner.data, callbacks, on_branch_end=branch_end, rules=rules)
        except Exception as exc:  # the whole pack failed (e.g. out of memory): every trial left
            for i in range(len(self.group)):
                if i not in self.ended:
                    self._fail(i, exc)
            gc.collect()
        except KeyboardInterrupt:
            for i, recorder in enumerate(self.recorders):
                if i not in self.ended:
                    recorder.fail("interrupted", "interrupted by the user", state="interrupted")
            raise
