"""The sweep spec: one YAML file, validated into the typed object that flows from CLI to engines.

Validation is strict (unknown keys are errors, with the closest valid key suggested) and every
message names the field, so a typo costs seconds, not a wasted sweep. The objective and
`train.monitor` are checked against the metric names the compiled model will log
(`experiments.metrics`): for the spec's task, or, while the task is still to be inferred from
the data, for any task the spec allows (then once more by `Spec.for_task`).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from experiments.dispatch import is_steps_setting
from experiments.metrics import check_metrics, logged_metrics
from experiments.monitoring import metric_direction
from experiments.registry import (
    DATASETS,
    MODEL_OPTIONS,
    MODELS,
    is_dataset_function,
    is_dir,
    is_npz,
    is_object_name,
    is_user_builder,
)
from experiments.tasks import TASK_INFO, TASKS
from sweeps.errors import SpecError
from sweeps.spec.space import Space, SpaceError, spec_values

Direction = Literal["maximize", "minimize"]
SAMPLERS = ("tpe", "random", "grid", "qmc")
ENGINE_OPTIONS = {"sampler": "optuna", "pruner": "optuna", "tuner": "kerastuner"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(BaseModel):
    """`name` and how to split it; a dataset function's own options are kept as given (other
    datasets take no other keys: `parse_spec` checks that first)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str
    validation_split: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    train_size: int | None = Field(None, ge=1)
    val_size: int | None = Field(None, ge=1)
    test_size: int | None = Field(None, ge=1)
    image_size: int | None = Field(None, ge=4)
    color_mode: Literal["rgb", "grayscale"] | None = None  # dir: datasets

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if (
            name in DATASETS
            or ((is_npz(name) or is_dir(name)) and len(name) > 4)
            or is_dataset_function(name)
        ):
            return name
        raise ValueError(
            f"unknown dataset {name!r} (expected one of: {', '.join(DATASETS)}, npz:PATH, dir:PATH, "
            "or package.module:function)"
        )

    @field_validator("color_mode")
    @classmethod
    def _color_mode(cls, color_mode: str | None, info: ValidationInfo) -> str | None:
        if color_mode is not None and not is_dir(str(info.data.get("name", "dir:"))):
            raise ValueError("only for image folders (dir:PATH)")
        return color_mode

    def options(self) -> dict[str, Any]:
        """What a dataset function is called with."""
        return dict(self.model_extra or {})


class ModelSpec(BaseModel):
    """`name` plus the builder's options (units, filters, ...), kept as given."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name in MODELS or is_user_builder(name):
            return name
        raise ValueError(
            f"unknown model {name!r} (expected one of: {', '.join(MODELS)}, or package.module:function)"
        )

    @model_validator(mode="after")
    def _options(self) -> ModelSpec:
        allowed = self.allowed_options()
        for key in self.options():
            if allowed is not None and key not in allowed:
                raise ValueError(_unknown_key(key, sorted(allowed), "option", f"model {self.name!r}"))
        return self

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def allowed_options(self) -> set[str] | None:
        """The option names of a built-in model; None for a user builder, which takes anything."""
        return None if is_user_builder(self.name) else set(MODEL_OPTIONS[self.name])


class TrainSpec(_Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    loss: str | None = None  # a Keras loss identifier or package.module:function; None: the task's
    metrics: list[str] | None = None  # Keras metric identifiers or package.module:function; None: the task's
    monitor: str | None = None
    monitor_direction: Direction | None = None  # needed only for a metric whose name does not say
    seed: int = 0
    mixed_precision: bool = False
    jit_compile: bool | Literal["auto"] = "auto"
    steps_per_execution: int | str = "auto"  # training steps per call into Keras
    fuse: int = Field(1, ge=1)  # up to this many trials trained together as one model
    verbose: int = Field(0, ge=0, le=2)

    @field_validator("steps_per_execution", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> int | str:
        if is_steps_setting(value):
            return value
        raise ValueError(f"expected 'auto' or an integer >= 1, got {value!r}")

    @field_validator("loss")
    @classmethod
    def _loss(cls, loss: str | None) -> str | None:
        if loss is not None and not (is_object_name(loss) or loss.isidentifier()):
            raise ValueError(
                f"{loss!r} is not a loss: expected a Keras loss identifier (mse, huber, "
                "binary_crossentropy, ...) or package.module:function"
            )
        return loss


class ObjectiveSpec(_Section):
    metric: str | None = None  # None: the task's (val_accuracy, val_auc, val_loss)
    direction: Direction | None = None  # None: from the metric's name


class PrunerSpec(_Section):
    """Optuna's pruners; epochs are the steps they compare trials on."""

    name: Literal["none", "median", "percentile", "successive_halving", "hyperband"]
    startup_trials: int = Field(5, ge=0)  # median/percentile: trials run in full before pruning
    warmup_epochs: int = Field(1, ge=0)  # median/percentile: epochs never pruned
    percentile: float = Field(25.0, gt=0, lt=100)
    min_epochs: int = Field(1, ge=1)  # successive_halving/hyperband: the smallest budget
    reduction_factor: int = Field(3, ge=2)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class EngineSpec(_Section):
    """`sampler`/`pruner` belong to Optuna, `tuner` to KerasTuner; each defaults for its own
    engine (tpe, random) and is an error, if given, with the other."""

    name: Literal["optuna", "kerastuner"] = "optuna"
    sampler: Literal["tpe", "random", "grid", "qmc"] | None = None
    tuner: Literal["random", "bayesian", "hyperband", "grid"] | None = None
    seed: int | None = 0
    pruner: PrunerSpec | None = None

    @field_validator("sampler", "tuner", "pruner")
    @classmethod
    def _engine_option(cls, value: Any, info: ValidationInfo) -> Any:
        owner = ENGINE_OPTIONS[info.field_name or ""]
        engine = info.data.get("name")  # absent when the name itself was invalid
        if value is not None and engine is not None and engine != owner:
            instead = "engine.tuner" if owner == "optuna" else "engine.sampler"
            raise ValueError(f"only for engine {owner}, not {engine} (which is set with {instead})")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> EngineSpec:
        if self.name == "optuna" and self.sampler is None:
            object.__setattr__(self, "sampler", "tpe")
        if self.name == "kerastuner" and self.tuner is None:
            object.__setattr__(self, "tuner", "random")
        return self


class BudgetSpec(_Section):
    trials: int = Field(20, ge=1)  # complete + pruned trials, across all workers
    timeout: float | None = Field(None, gt=0)  # seconds, per worker
    retries: int = Field(0, ge=0)  # re-runs of a trial whose worker died
    max_failures: int = Field(5, ge=1)  # failed trials in a row before a worker gives up


class Spec(BaseModel):
    """A validated sweep. `space` is parsed into a `Space`; `raw()` gives the YAML shape back."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    description: str = ""
    task: Literal["classification", "binary", "regression"] | None = None  # None: inferred from the data
    dataset: DatasetSpec
    model: ModelSpec
    train: TrainSpec = TrainSpec()
    objective: ObjectiveSpec = ObjectiveSpec()
    space: Space
    engine: EngineSpec = EngineSpec()
    budget: BudgetSpec = BudgetSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
            raise ValueError(f"{name!r} must be letters, digits, '_', '-' or '.'")
        return name

    @model_validator(mode="after")
    def _fuse_engine(self) -> Spec:
        if self.train.fuse > 1 and self.engine.name == "kerastuner":
            raise ValueError(
                f"train.fuse: {self.train.fuse} trials at once needs engine optuna; the kerastuner "
                "engine runs one trial at a time (use fuse: 1)"
            )
        return self

    @property
    def monitor(self) -> str:
        """What EarlyStopping and the checkpoint watch: `train.monitor`, else the objective metric."""
        return str(self.train.monitor or self.objective.metric)

    @property
    def monitor_direction(self) -> Direction:
        """Whether the monitored metric improves up or down (checked when the spec was parsed)."""
        if self.train.monitor_direction is not None:
            return self.train.monitor_direction
        if self.monitor == self.objective.metric and self.objective.direction is not None:
            return self.objective.direction
        return metric_direction(self.monitor)

    def for_task(self, task: str) -> Spec:
        """This spec with its task settled (inferred from the data): the objective defaults to the
        task's, and everything is checked against the metrics that task's model logs."""
        return parse_spec({**self.raw(), "task": task})

    def raw(self) -> dict[str, Any]:
        """The spec as plain data, in the YAML shape (defaults filled in)."""
        out = self.model_dump(exclude={"space", "model", "dataset"}, exclude_none=True)
        out["dataset"] = {**self.dataset.model_dump(exclude_none=True), **self.dataset.options()}
        out["model"] = {"name": self.model.name, **self.model.options()}
        out["space"] = self.space.to_dict()
        order = [
            "name",
            "description",
            "task",
            "dataset",
            "model",
            "train",
            "objective",
            "space",
            "engine",
            "budget",
        ]
        return {key: out[key] for key in order if key in out}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.raw(), sort_keys=False)

    def with_fixed(self, config: Mapping[str, Any], **changes: Any) -> Spec:
        """A spec that runs one config alone (the best-config re-run)."""
        raw = self.raw()
        raw["space"] = spec_values(config)
        raw.update(changes)
        return parse_spec(raw)


def _unknown_key(key: str, known: list[str], what: str, where: str) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {key!r} in {where}{hint}; allowed: {', '.join(known)}"


def _format(error: ValidationError, raw: Mapping[str, Any]) -> str:
    """The first pydantic error as `field.path: message`, with a suggestion for unknown keys."""
    err = error.errors()[0]
    loc = [str(part) for part in err["loc"]]
    path = ".".join(loc)
    if err["type"] == "extra_forbidden":
        section = _SECTIONS.get(loc[-2]) if len(loc) > 1 else Spec
        known = sorted(section.model_fields) if section else []
        parent = ".".join(loc[:-1]) or "top level"
        return f"{path}: {_unknown_key(loc[-1], known, 'key', parent)}"
    if err["type"] == "missing":
        return f"{path}: required field is missing"
    message = str(err["msg"]).removeprefix("Value error, ")
    if "input" in err and err["type"] not in ("value_error",) and not isinstance(err["input"], dict):
        message += f" (got {err['input']!r})"
    return f"{path}: {message}" if path else message


_SECTIONS: dict[str, type[BaseModel]] = {
    "dataset": DatasetSpec,
    "model": ModelSpec,
    "train": TrainSpec,
    "objective": ObjectiveSpec,
    "engine": EngineSpec,
    "pruner": PrunerSpec,
    "budget": BudgetSpec,
}


def _check_dataset_keys(dataset: Any, source: str | None) -> None:
    """Only a dataset function takes keys of its own (its options); elsewhere a key is a typo."""
    if not isinstance(dataset, Mapping) or is_dataset_function(str(dataset.get("name", ""))):
        return
    known = sorted(DatasetSpec.model_fields)
    for key in dataset:
        if key not in known:
            raise SpecError(
                f"dataset.{key}: {_unknown_key(str(key), known, 'key', 'dataset')}", source=source
            )


def _direction(metric: str, given: Direction | None, field: str, source: str | None) -> Direction:
    if given is not None:
        return given
    try:
        return metric_direction(metric)
    except ValueError:
        raise SpecError(
            f"{field}: cannot tell whether {metric!r} is to be maximized or minimized from its name; "
            "give it (maximize or minimize)",
            source=source,
        ) from None


def _check_metrics(spec: Spec, source: str | None) -> Spec:
    """The objective and monitor against the names the compiled model logs; directions filled in.

    With the task still unknown, a name any task the spec allows would log passes here, and
    `Spec.for_task` checks again once the data have said which task it is.
    """
    metrics = spec.train.metrics
    errors: dict[str, str] = {}
    for task in [spec.task] if spec.task else TASKS:
        try:
            check_metrics(task, metrics)
        except ValueError as exc:
            errors[task] = str(exc)
    tasks = [task for task in ([spec.task] if spec.task else TASKS) if task not in errors]
    if not tasks:
        raise SpecError(f"train.metrics: {next(iter(errors.values()))}", source=source)
    logged = list(dict.fromkeys(name for task in tasks for name in logged_metrics(task, metrics)))
    where = f"task {spec.task}" if spec.task else f"any task ({', '.join(tasks)})"

    def check(metric: str, field: str) -> None:
        if metric not in logged:
            raise SpecError(
                f"{field}: {metric!r} is not a metric the compiled model logs for {where}; it logs: "
                f"{', '.join(logged)} (add the metric to train.metrics)",
                source=source,
            )

    objective = spec.objective
    metric = objective.metric or (TASK_INFO[spec.task].objective if spec.task else None)
    if metric is None:  # the task's default, once the data say which task it is
        if spec.train.monitor is not None:
            check(spec.train.monitor, "train.monitor")
            _direction(spec.train.monitor, spec.train.monitor_direction, "train.monitor_direction", source)
        return spec
    check(metric, "objective.metric")
    direction = _direction(metric, objective.direction, "objective.direction", source)
    if spec.train.monitor is not None and spec.train.monitor != metric:
        check(spec.train.monitor, "train.monitor")
        _direction(spec.train.monitor, spec.train.monitor_direction, "train.monitor_direction", source)
    return spec.model_copy(update={"objective": ObjectiveSpec(metric=metric, direction=direction)})


def parse_spec(raw: Any, source: str | None = None) -> Spec:
    """Validate plain data (as loaded from YAML) into a `Spec`, or raise one-line `SpecError`."""
    if not isinstance(raw, Mapping):
        raise SpecError(f"expected a mapping at the top level, got {type(raw).__name__}", source=source)
    data = dict(raw)
    _check_dataset_keys(data.get("dataset"), source)
    allowed: set[str] | None = set()
    try:
        if isinstance(data.get("model"), Mapping):
            allowed = ModelSpec.model_validate(data["model"]).allowed_options()
    except ValidationError as exc:
        message = _format(exc, data["model"])
        raise SpecError(
            f"model.{message}" if ":" in message.split(" ")[0] else f"model: {message}", source=source
        ) from None
    try:
        if data.get("space") is None:
            raise SpaceError("space", "required field is missing")
        data["space"] = Space.parse(data["space"], allowed)
        spec = Spec.model_validate(data)
    except SpaceError as exc:
        raise SpecError(str(exc), source=source) from None
    except ValidationError as exc:
        raise SpecError(_format(exc, data), source=source) from None
    try:  # a grid with a range in it is known now, before an engine opens any store
        if "grid" in (spec.engine.sampler, spec.engine.tuner):
            spec.space.grid_points("grid sampler" if spec.engine.sampler == "grid" else "grid tuner")
    except SpaceError as exc:
        raise SpecError(str(exc), source=source) from None
    return _check_metrics(spec, source)


def builtin_names() -> list[str]:
    """Names of the specs shipped as package data (`sweep run NAME`)."""
    files = resources.files("sweeps.spec.builtin").iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def read_spec_data(source: str | Path) -> tuple[dict[str, Any], str]:
    """A spec file's plain data, or a built-in spec's by name; returns (data, source label)."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if path.is_dir():
            raise SpecError(f"{path} is a folder, not a spec file")
        if not path.is_file():
            raise SpecError(f"no such file: {path}")
        try:
            text, label = path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError:
            raise SpecError(f"{path} is not a text file (a spec is YAML)") from None
        except OSError as exc:
            raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from None
    elif str(source) in builtin_names():
        text = resources.files("sweeps.spec.builtin").joinpath(f"{source}.yaml").read_text(encoding="utf-8")
        label = f"builtin:{source}"
    else:
        known = builtin_names()
        close = difflib.get_close_matches(str(source), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(
            f"{source!r} is neither a spec file nor a built-in spec{hint}; built-in: {', '.join(known)}"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"malformed YAML{where}: {problem}", source=label) from None
    if not isinstance(data, dict):
        raise SpecError(f"expected a mapping at the top level, got {type(data).__name__}", source=label)
    return data, label


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys (`budget.trials`, `train.epochs`) on a copy of spec data."""
    out = copy.deepcopy(dict(data))
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[leaf] = value
    return out


def load_spec(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Spec:
    """A spec from a YAML path, a built-in name or a mapping, with dotted overrides applied."""
    if isinstance(source, Mapping):
        data, label = dict(source), None
    else:
        data, label = read_spec_data(source)
    return parse_spec(apply_overrides(data, overrides or {}), source=label)
