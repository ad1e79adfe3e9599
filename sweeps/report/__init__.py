"""The best-config report and sweep comparison, from MLflow. May import: spec, running, tracking.

`build.build_report` reads a sweep's runs into a `Report`; `files.write_report` writes
report.md, report.html, report.json and best.yaml; `retrain.retrain_best` retrains and
registers the best config; `compare.compare_frame` puts sweeps side by side. The CLI
commands (`sweep report`, `sweep compare`) are in `sweeps.cli.report`.
"""
