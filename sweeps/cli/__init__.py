"""The `sweep` command and its console output. May import any part of sweeps; none imports it."""

from __future__ import annotations

from sweeps.cli.app import app, main

__all__ = ["app", "main"]
