"""Optuna and KerasTuner proposing configs on one shared budget. May import: sweeps.spec, sweeps.errors."""
