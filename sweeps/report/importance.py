"""Parameter importance from the runs alone, by Optuna's fANOVA evaluator.

The report must work without the engine's storage (another machine, a KerasTuner sweep), so
the complete trials are replayed into an in-memory Optuna study whose distributions come from
the spec's space. fANOVA needs every trial to have every parameter it weighs, so the
conditional `momentum` (absent for optimizers without it) is left out, as are parameters that
took a single value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from sweeps.spec.space import Param, Space

METHOD = "fANOVA (Optuna's FanovaImportanceEvaluator, seed 0) over the complete trials"


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


def weighed_params(space: Space, configs: list[dict[str, Any]]) -> list[str]:
    """Searched parameters that every config has and that took more than one value."""
    names = []
    for name in space.searched:
        values = [config.get(name) for config in configs]
        if all(v is not None for v in values) and len({repr(v) for v in values}) > 1:
            names.append(name)
    return names


def param_importances(space: Space, ranked: pd.DataFrame, direction: str) -> dict[str, float]:
    """Importance of each searched parameter (summing to 1), most important first; empty when
    no parameter or no value varied (fewer than two complete trials, or all equally good)."""
    import optuna

    configs = list(ranked["config"]) if not ranked.empty else []
    names = weighed_params(space, configs)
    if ranked.empty or ranked["value"].nunique() < 2 or not names:
        return {}
    distributions = {name: distribution(space.params[name]) for name in names}
    study = optuna.create_study(direction=direction)
    for config, value in zip(configs, ranked["value"], strict=True):
        try:
            trial = optuna.trial.create_trial(
                params={name: config[name] for name in names},
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
