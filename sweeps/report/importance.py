"""Parameter importance from the runs alone, by Optuna's fANOVA evaluator, overall and per branch.

The report must work without the engine's storage (another machine, a KerasTuner sweep), so
the complete trials are replayed into an in-memory Optuna study whose distributions come from
the spec's space. fANOVA needs every trial to have every parameter it weighs, drawn from one
distribution, so overall it weighs the parameters all trials drew alike (the conditional
`momentum`, absent for optimizers without it, and a learning rate each optimizer searches in its
own range are left out), and within each branch of a choice that carries sub-spaces
(`optimizer=adam`) the parameters that branch's trials drew alike. Parameters that took a
single value are left out everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from sweeps.spec.space import Param, Space

METHOD = "fANOVA (Optuna's FanovaImportanceEvaluator, seed 0) over the complete trials"
MIN_BRANCH_TRIALS = 3  # fewer complete trials in a branch: nothing to weigh there


def distribution(param: Param) -> optuna.distributions.BaseDistribution | None:
    """The Optuna distribution a space entry is drawn from (None for a fixed value)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from sweeps.spec.space import Choice, Range

    if isinstance(param, Choice):
        return CategoricalDistribution(list(param.choices))
    if isinstance(param, Range):
        if param.integer:
            return IntDistribution(int(param.low), int(param.high), log=param.log, step=int(param.step or 1))
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    return None


Drawn = list[tuple[dict[str, Any], dict[str, "Param"]]]  # (config in the spec's words, entry per name)


def _complete(space: Space, ranked: pd.DataFrame) -> tuple[Drawn, list[float]]:
    """The complete trials' configs with the entry each parameter was drawn from, and their
    values; configs today's space cannot have drawn (the spec changed while the sweep ran) are
    dropped."""
    from sweeps.spec.space import spec_values

    drawn: Drawn = []
    scores: list[float] = []
    if ranked.empty:
        return drawn, scores
    for config, value in zip(ranked["config"], ranked["value"], strict=True):
        values = spec_values(config)
        try:
            slots = space.slots_of(values)
        except KeyError:
            continue
        drawn.append((values, {name: slot.param for name, slot in slots.items()}))
        scores.append(float(value))
    return drawn, scores


def weighed_params(space: Space, drawn: Drawn, exclude: tuple[str, ...] = ()) -> list[str]:
    """Searched parameters every config drew from the same entry, and that took more than one value."""
    names = []
    for name in space.searched:
        params = [entries.get(name) for _, entries in drawn]
        if name in exclude or params[0] is None or distribution(params[0]) is None:
            continue
        if any(p != params[0] for p in params):
            continue
        if len({repr(values[name]) for values, _ in drawn}) > 1:
            names.append(name)
    return names


def _fanova(drawn: Drawn, scores: list[float], names: list[str], direction: str) -> dict[str, float]:
    import optuna

    if len(set(scores)) < 2 or not names:
        return {}
    distributions = {name: distribution(drawn[0][1][name]) for name in names}
    study = optuna.create_study(direction=direction)
    for (values, _), value in zip(drawn, scores, strict=True):
        try:
            trial = optuna.trial.create_trial(
                params={name: values[name] for name in names},
                distributions=distributions,  # type: ignore[arg-type]
                value=float(value),
            )
        except ValueError:  # a value outside today's space: the spec changed while the sweep ran
            continue
        study.add_trial(trial)
    if len(study.trials) < 2:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    found = optuna.importance.get_param_importances(study, evaluator=evaluator, params=names)
    return {name: float(value) for name, value in found.items()}


def param_importances(space: Space, ranked: pd.DataFrame, direction: str) -> dict[str, float]:
    """Importance of each parameter all trials drew alike (summing to 1), most important first;
    empty when no parameter or no value varied (fewer than two complete trials, or all equally good)."""
    drawn, scores = _complete(space, ranked)
    if not drawn:
        return {}
    return _fanova(drawn, scores, weighed_params(space, drawn), direction)


def branch_importances(space: Space, ranked: pd.DataFrame, direction: str) -> dict[str, dict[str, float]]:
    """Within each branch of a choice that carries sub-spaces (`optimizer=adam`), the importance of
    the parameters its trials drew alike; branches with fewer than 3 complete trials are left out."""
    drawn, scores = _complete(space, ranked)
    found: dict[str, dict[str, float]] = {}
    for parent in space.branching:
        groups: dict[str, list[int]] = {}
        for i, (values, _) in enumerate(drawn):
            groups.setdefault(f"{parent}={values[parent]}", []).append(i)
        for branch, rows in groups.items():
            if len(rows) < MIN_BRANCH_TRIALS:
                continue
            subset = [drawn[i] for i in rows]
            values = _fanova(
                subset, [scores[i] for i in rows], weighed_params(space, subset, (parent,)), direction
            )
            if values:
                found[branch] = values
    return found
