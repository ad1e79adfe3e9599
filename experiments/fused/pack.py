"""``train_pack(configs, data, callbacks)``: K trials trained as one Keras model, K results out.

Each branch is built by the same builder under the same seed as its trial run alone (so its
initial weights are the solo trial's), fed the same shuffled batches (one tf.data pipeline,
`experiments.training._fit_data`), and updated by its own optimizer's Keras math
(`experiments.fused.optimizer`). Per branch, a solo trial's semantics: EarlyStopping with its
own patience and restored best weights, a best-only checkpoint written as a standalone model of
the branch, a NaN/inf loss failing that branch only, the trial's own callbacks (a pruner stops
its branch). A branch that ended no longer changes; when enough have ended for the saving to
pay for tracing a new step function, the pack is rebuilt without them (weights, optimizer slots
and step count carried over, the data pipeline continuing where it was). The fit ends when every
branch has ended.

Example:
    >>> configs = [TrainConfig(model="mlp", optimizer=o, learning_rate=1e-2) for o in ("sgd", "adam")]
    >>> results = train_pack(configs, load_dataset("digits"))  # doctest: +SKIP
    >>> [r.best_epoch for r in results]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from experiments.backends import new_session, release_memory
from experiments.data import Dataset
from experiments.errors import ConfigError
from experiments.fused.branch import Branch, BranchView
from experiments.fused.checkpoint import write_checkpoint
from experiments.fused.head import PackLoss, PackMetrics, branch_logs, head_for
from experiments.fused.model import (
    BranchInit,
    BranchState,
    Pack,
    PackPlan,
    build_pack,
    plan_pack,
    reuse_pack,
    traced_rules,
)
from experiments.fused.plan import stackable_family
from experiments.fused.scope import unfusable
from experiments.optimizers import momentum_of
from experiments.streams import require_arrays
from experiments.training import (
    TrainConfig,
    TrialResult,
    _fit_data,
    _steps_per_execution,
    build_trial_model,
    precision_policy,
    result_from_history,
)

__all__ = ["SHARED_FIELDS", "train_pack"]

# What the branches of one pack must agree on: the data pipeline and the compiled step.
SHARED_FIELDS = (
    "batch_size",
    "epochs",
    "initial_epoch",
    "seed",
    "mixed_precision",
    "jit_compile",
    "steps_per_execution",
)

OnBranchEnd = Callable[[int, "TrialResult | Exception"], None]


def train_pack(
    configs: Sequence[TrainConfig],
    data: Dataset,
    callbacks: Sequence[Sequence[keras.callbacks.Callback]] | None = None,
    on_branch_end: OnBranchEnd | None = None,
    rules: Sequence[str] = (),
) -> list[TrialResult | Exception]:
    """Train `configs` together; result i is config i's `TrialResult`, or the exception that
    kept its branch from being built (an unknown model option, a builder that raises).

    `callbacks[i]` are config i's own callbacks, run after its built-in ones with a
    `BranchView` as their model. `on_branch_end(i, result)` hears of each branch as it ends,
    while the others still train. `rules`: the optimizers later packs may use (a sweep's
    choices); on TensorFlow the step is traced for them too, so that every later pack of the
    same layout reuses it instead of tracing and compiling a new one.

    Raises:
        ConfigError: configs that disagree on a `SHARED_FIELDS` value.
        Exception: whatever the pack's `fit` raised, after its memory was released.
    """
    for name in SHARED_FIELDS:
        values = {repr(getattr(c, name)) for c in configs}
        if len(values) > 1:
            raise ConfigError(f"a pack's trials must share {name}; got {', '.join(sorted(values))}")
    for config in configs:
        why = unfusable(config.task, config.loss, config.metrics)
        if why is not None:
            raise ConfigError(f"a pack trains classification with its default loss and metrics; got {why}")
    require_arrays(data, "fused trials")
    callbacks = callbacks or [() for _ in configs]
    results: dict[int, TrialResult | Exception] = {}

    def ended(index: int, result: TrialResult | Exception) -> None:
        results[index] = result
        if on_branch_end is not None:
            on_branch_end(index, result)

    started = time.perf_counter()
    new_session()  # names and seeds, and what the last pack left
    inits: list[BranchInit] = []
    cache: dict[tuple, list[np.ndarray]] = {}
    for index, config in enumerate(configs):
        try:
            inits.append(_branch_init(index, config, data, cache))
        except Exception as exc:  # this branch cannot be built; the others train
            ended(index, exc)
    if inits:
        trainer = _PackTrainer(configs, data, inits, list(callbacks), ended, started, rules)
        try:
            trainer.run()
        except Exception:
            del trainer
            release_memory()
            raise
    return [results[i] for i in range(len(configs))]


def _branch_init(index: int, config: TrainConfig, data: Dataset, cache: dict) -> BranchInit:
    """The branch's initial weights, as its solo trial's `_build` makes them (same seed)."""
    options = dict(config.model_options)
    # Same seed, same builder, same layers: the same initial weights (Dropout draws a seed when
    # it is created, so whether there is one matters, not its rate).
    key = (config.model, repr(sorted(options.items())), config.dropout > 0, config.initial_weights)
    family = config.model if config.model in ("mlp", "cnn") else None
    momentum = momentum_of(config.optimizer, config.momentum)
    model = None
    if family is None or key not in cache:
        model = _solo_model(config, data)
        weights = [np.array(w) for w in model.get_weights()]
        if stackable_family(config.model, len(weights)) is None:
            family = None
        else:
            cache[key] = weights
            model = None
    if family is not None:
        weights = [w.copy() for w in cache[key]]
    return BranchInit(
        index,
        config.optimizer,
        config.learning_rate,
        momentum,
        config.dropout,
        family,
        BranchState(weights),
        model,
    )


def _solo_model(config: TrainConfig, data: Dataset) -> keras.Model:
    with precision_policy(config.mixed_precision):
        return build_trial_model(config, data)


# A rebuild pays when its expected saving exceeds its cost (tracing a new step) this many times.
REBUILD_MARGIN = 1.0

# The last compiled pack, by layout: the next pack of the same layout (the next K configs of
# a sweep) takes new branches into it instead of tracing and compiling its step again.
_compiled: dict[tuple, Pack] = {}


class _PackController(keras.callbacks.Callback):
    """The pack's one Keras callback: hands each branch its own logs."""

    def __init__(self, trainer: _PackTrainer, pack: Pack, rng: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.trainer = trainer
        self.pack = pack
        self.epoch_seconds: list[float] = []
        self.rebuild = False
        self.rng = rng

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.rng is not None:
            # A rebuilt pack's first epoch: the shuffle goes on from where the last fit left it
            # (Keras's first look at the data in a new fit drew from it in between).
            _set_rng_state(self.rng)
            self.rng = None
        self._epoch_start = time.perf_counter()
        for branch in self.trainer.live_branches():
            branch.call("on_epoch_begin", epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        for branch in self.trainer.live_branches():
            branch.call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.trainer.batch_end(self.pack, batch, logs or {})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_seconds.append(time.perf_counter() - self._epoch_start)
        stop = self.trainer.epoch_end(self.pack, epoch, logs or {})
        if not stop and self.trainer.live and self._rebuild_pays(epoch):
            self.rebuild = stop = True
            self.rng = _rng_state()  # the next fit draws its epochs' shuffles from here
        self.model.stop_training = stop

    def _rebuild_pays(self, epoch: int) -> bool:
        """Whether a pack without the ended branches saves more time than it costs to trace.

        The cost: how much longer this fit's first epoch took than the others (tracing). The
        saving: the ended branches' share of an epoch over half the epochs left.
        """
        built, live = len(self.pack.order), len(self.trainer.live)
        left = self.trainer.epochs - (epoch + 1)
        if live == built or left <= 0 or len(self.epoch_seconds) < 2:
            return False
        later = statistics.median(self.epoch_seconds[1:])
        trace = max(self.epoch_seconds[0] - later, 0.0)
        saving = later * (1 - live / built) * left / 2
        return saving > REBUILD_MARGIN * trace


class _PackTrainer:
    """The branches of one pack and the fits that train them."""

    def __init__(
        self,
        configs: Sequence[TrainConfig],
        data: Dataset,
        inits: list[BranchInit],
        callbacks: list[Sequence[keras.callbacks.Callback]],
        ended: Callable[[int, TrialResult | Exception], None],
        started: float,
        rules: Sequence[str] = (),
    ) -> None:
        self.data = data
        self.rules = tuple(rules)
        self.config = configs[inits[0].index]
        self.epochs = self.config.epochs
        self.head = head_for(data.num_classes)
        self.inits = {b.index: b for b in inits}
        self.initial = {b.index: BranchState([w.copy() for w in b.state.weights]) for b in inits}
        self.states = {b.index: b.state for b in inits}
        self.iterations = 0
        self.pack: Pack | None = None
        self.branches = {
            b.index: Branch(
                b.index,
                configs[b.index],
                list(callbacks[b.index]),
                BranchView(self._reader(b.index), self._writer(b.index)),
            )
            for b in inits
        }
        self.live = [b.index for b in inits]
        self.ended = ended
        self.mark = started
        self.names = ("loss", *self.head.metric_names)

    def _reader(self, index: int) -> Callable[[], list[Any]]:
        return lambda: self.pack.read([index])[index].weights if self.pack else self.states[index].weights

    def _writer(self, index: int) -> Callable[[list[Any]], None]:
        def write(weights: list[Any]) -> None:
            assert self.pack is not None
            current = self.pack.read([index])[index]
            self.pack.write({index: BranchState([np.asarray(w) for w in weights], current.slots)})

        return write

    def live_branches(self) -> list[Branch]:
        return [self.branches[b] for b in self.live]

    def run(self) -> None:
        keras.utils.set_random_seed(self.config.seed)  # the pipeline's shuffle, as a solo trial seeds it
        fit_data = _fit_data(self.config, self.data)
        epoch = self.config.initial_epoch
        rng = None
        while self.live:
            self.pack = self._build()
            controller = _PackController(self, self.pack, rng)
            self.pack.model.fit(
                **fit_data, epochs=self.epochs, initial_epoch=epoch, callbacks=[controller], verbose=0
            )
            epoch += len(controller.epoch_seconds)
            if not controller.rebuild:
                break
            rng = controller.rng
            self.states.update(self.pack.read(self.live))
            self.iterations = self.pack.iterations
        self.pack = None

    def _build(self) -> Pack:
        inits = []
        for index in self.live:
            init = self.inits[index]
            init.state = self.states[index]
            inits.append(init)
        plan = plan_pack(inits, self.data.input_shape)
        layout = plan.key({b.index: b for b in inits})
        steps = _steps_per_execution(self.config, self.data)
        jit = _pack_jit_compile(self.config.jit_compile, plan, any(b.dropout > 0 for b in inits))
        key = None
        # Only TensorFlow traces a step worth keeping; elsewhere a fresh model also draws its
        # first batch (Keras's symbolic build) from the shuffle, as the solo trial's does.
        if layout is not None and keras.backend.backend() == "tensorflow":
            config = self.config
            key = (layout, self.data.input_shape, self.data.num_classes, steps, repr(jit))
            key += (config.mixed_precision, keras.backend.backend())
        cached = _compiled.get(key) if key is not None else None
        if cached is not None and reuse_pack(cached, plan, inits, self.data.input_shape, self.config.seed):
            cached.optimizer.iterations.assign(self.iterations)
            return cached
        # Traced with the rules the sweep may use and those of the pack it replaces, so that
        # the sweep's later packs find one step for all their optimizers.
        also = traced_rules(cached) if cached is not None else []
        if key is not None:
            traced = [set(also[i]) if i < len(also) else set() for i in range(len(plan.groups))]
            also = [tuple(rules | set(self.rules)) for rules in traced]
        previous = keras.config.dtype_policy()
        if self.config.mixed_precision:
            keras.mixed_precision.set_dtype_policy("mixed_float16")
        try:
            pack = build_pack(plan, inits, self.data.input_shape, self.head, self.config.seed, also)
        finally:
            keras.mixed_precision.set_dtype_policy(previous)
        pack.optimizer.iterations.assign(self.iterations)
        pack.model.compile(
            optimizer=pack.optimizer,
            loss=PackLoss(self.head),
            metrics=[PackMetrics(self.head, len(pack.order))],
            jit_compile=jit,
            steps_per_execution=steps,
        )
        _compiled.clear()
        if key is not None:
            _compiled[key] = pack
        return pack

    def _charge(self) -> None:
        """Split the time since the last mark evenly among the live branches."""
        now = time.perf_counter()
        share = (now - self.mark) / max(len(self.live), 1)
        for branch in self.live_branches():
            branch.seconds += share
        self.mark = now

    def batch_end(self, pack: Pack, batch: int, logs: dict[str, Any]) -> None:
        value = logs.get("pack_loss")
        losses = None if value is None else keras.ops.convert_to_numpy(value)
        per_branch = None
        for position, index in enumerate(pack.order):
            branch = self.branches[index]
            if index not in self.live or branch.diverged:
                continue
            if losses is not None and not math.isfinite(float(losses[position])):
                branch.diverged = True  # frozen now; it ends with this epoch
                pack.stop(index, branch.best_state or self.initial[index])
                continue
            if branch.batch_callbacks:
                per_branch = per_branch or branch_logs(logs, self.names)
                branch.call("on_train_batch_end", batch, per_branch[position])
                if branch.view.stop_training:
                    pack.stop(index, pack.read([index])[index])

    def epoch_end(self, pack: Pack, epoch: int, logs: dict[str, Any]) -> bool:
        """Each live branch's epoch; True when the fit should stop (every branch ended)."""
        self._charge()
        per_branch = branch_logs(logs, self.names)
        position = {index: p for p, index in enumerate(pack.order)}
        epoch_logs = {index: per_branch[position[index]] for index in self.live}
        improved = [i for i in self.live if self.branches[i].record(epoch, epoch_logs[i])]
        if improved:
            snapshots = pack.read(improved)
            for index in improved:
                self.branches[index].best_state = snapshots[index]
                self.branches[index].best_iterations = pack.iterations
        for index in self.live:
            self.branches[index].after_epoch(epoch)
            if self.config.verbose:
                _print_epoch(index, epoch, self.epochs, self.branches[index].last_logs)
        done = [i for i in self.live if self.branches[i].done]
        self.live = [i for i in self.live if i not in done]
        for index in done:
            self._finish(pack, index)
        return not self.live

    def _finish(self, pack: Pack, index: int) -> None:
        started = time.perf_counter()
        branch = self.branches[index]
        if self.live:  # the others go on: hold this branch still, at its best
            pack.stop(index, branch.best_state or self.initial[index])
        config = branch.config
        best = branch.best
        if (
            config.checkpoint_path
            and branch.best_state is not None
            and best is not None
            and math.isfinite(best)
        ):
            write_checkpoint(
                config,
                self.data.input_shape,
                self.data.num_classes,
                branch.best_state,
                branch.best_iterations,
                config.checkpoint_path,
            )
        branch.call("on_train_end", branch.last_logs)
        branch.seconds += time.perf_counter() - started
        result = result_from_history(
            config,
            branch.history,
            stopped_epoch=branch.stopped_epoch,
            stop_requested=branch.view.stop_training,
            train_seconds=branch.seconds,
        )
        self.mark += time.perf_counter() - started  # the others are not charged for it
        self.ended(index, result)


def _pack_jit_compile(asked: bool | str, plan: PackPlan, dropout: bool) -> bool | str:
    """`jit_compile` for a pack's step: "auto" is XLA for stacked MLPs without dropout on TensorFlow.

    Keras's "auto" leaves XLA off on a CPU. A pack of stacked MLPs is many small elementwise
    ops (each branch's optimizer, the stacked layers' transposes) that XLA fuses, and its step
    is traced and compiled once for the packs after it: bench/fused.py's workload (b), K = 6,
    12.6 -> 10.3 s on the 2-core CPU. Kept off where it was measured slower there: convolutions
    (workload (c) 23 -> 53 s), solo trials (each would pay the compile) and dropout: even with
    its noise drawn by Philox (`experiments.fused.layers`), XLA compiled a pack of 12 MLP(100)
    branches with dropout 2.4 s longer than TensorFlow traced it and then saved 0.035 s an
    epoch (digits, batch 32), so one pack of 20 epochs took 5.5-7.7 s against 3.6-3.8 s.
    """
    if asked != "auto" or keras.backend.backend() != "tensorflow" or plan.separate or dropout:
        return asked
    return True if all(group.family == "mlp" for group in plan.groups) else asked


def _rng_state() -> dict[str, Any]:
    """The global random states an array pipeline shuffles from (NumPy's; PyTorch's DataLoader)."""
    import sys

    state: dict[str, Any] = {"numpy": np.random.get_state()}
    torch = sys.modules.get("torch")
    if torch is not None:
        state["torch"] = torch.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    """Back to a `_rng_state()`."""
    import sys

    np.random.set_state(state["numpy"])
    torch = sys.modules.get("torch")
    if torch is not None and "torch" in state:
        torch.set_rng_state(state["torch"])


def _print_epoch(index: int, epoch: int, epochs: int, logs: dict[str, float]) -> None:
    values = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
    print(f"branch {index} epoch {epoch + 1}/{epochs} - {values}", flush=True)
