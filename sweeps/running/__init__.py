"""Trials trained and recorded, workers, devices. May import: spec, engines, experiments, tracking."""
