"""The `train_pack` tests again on the PyTorch backend, in a subprocess (the backend is chosen
once per process). CI installs torch==2.13.0; without it the test skips."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_fused_training_matches_solo_on_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (CI installs torch==2.13.0)")
    selected = "six_optimizers or stops_early or nan_branch or widths or rebuilt or cannot_be_built"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/experiments/test_fused.py",
        "-q",
        "-k",
        selected,
        "-p",
        "no:cacheprovider",
    ]
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "6 passed" in result.stdout, result.stdout[-2000:]
