"""Tag names that make up sweeplab's MLflow layout; reports and the UI read them back."""

from __future__ import annotations

ROLE = "sweeplab.role"  # "sweep" on the parent run, "trial" on each nested run
ROLE_SWEEP = "sweep"
ROLE_TRIAL = "trial"
ROLE_RESTARTED = "restarted"  # a parent run set aside by `sweep run --restart`, kept whole
ARCHIVED_AS = "sweeplab.archived_as"  # on it: the name its study / project was kept under
SWEEP = "sweeplab.sweep"  # the sweep (spec) name, on both
TRIAL = "sweeplab.trial"  # the engine's trial number
ENGINE = "sweeplab.engine"
STATE = "sweeplab.state"  # complete | pruned | failed | running
REASON = "sweeplab.reason"  # why a trial failed or stopped: exception, nan_loss, ...
ERROR = "sweeplab.error"  # the error message of a failed trial
CONFIG = "sweeplab.config"  # the trial's config as JSON, exact types kept
PACK = "sweeplab.pack"  # fused trials: an id shared by the trials trained together as one model
BEST_TRIAL = "sweeplab.best_trial"
BEST_CONFIG = "sweeplab.best_config"
BEST_MODEL_TRIAL = "sweeplab.best_model_trial"
PARENT = "mlflow.parentRunId"
ROLE_RETRAIN = "retrain"  # the best config retrained on train+validation (`sweep report --retrain`)
SOURCE_RUN = "sweeplab.source_run"  # on a retrain run: the trial run whose config it retrains
REGISTERED_MODEL = "sweeplab.registered_model"  # on a retrain run: NAME/VERSION in the Model Registry
VERSIONS = "sweeplab.versions"  # JSON: the package versions of the machine that wrote the run
GIT_COMMIT = "mlflow.source.git.commit"  # MLflow's own tag: the UI shows it on the run page
GIT_DIRTY = "sweeplab.git_dirty"  # "true" when the working tree had uncommitted changes
