"""Where results go: the one package that talks to MLflow.

`SweepTracker` owns a sweep's parent run and opens one nested run per trial
(`TrialRecorder`), whose Keras callback batches per-epoch metrics. `query` turns the
stored runs back into pandas DataFrames for reports and listings.
"""

from __future__ import annotations

from tracking.store import DEFAULT_TRACKING_URI, resolve_tracking_uri
from tracking.tags import ROLE, ROLE_SWEEP, ROLE_TRIAL, STATE, SWEEP, TRIAL

__all__ = [
    "DEFAULT_TRACKING_URI",
    "ROLE",
    "ROLE_SWEEP",
    "ROLE_TRIAL",
    "STATE",
    "SWEEP",
    "TRIAL",
    "resolve_tracking_uri",
]
