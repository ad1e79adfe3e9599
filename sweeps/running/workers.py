"""`sweep run --workers N`: N worker processes on one study, one trial at a time each.

The coordinating process opens the sweep (study, parent run), starts the workers as
`sweep worker` subprocesses with their own device environment, shows progress by reading
the study, and closes the sweep when they are done. A worker can also be started by hand
on another machine with the same spec and storage URLs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sweeps.errors import SweepFailed

if TYPE_CHECKING:
    from sweeps.running.runner import OnProgress, Sweep, SweepResult

POLL_SECONDS = 1.0
STOP_SECONDS = 120.0  # how long interrupted workers get to record their trial in progress


def storage_url(storage: str | None, local_dir: Path) -> str:
    """The storage URL every worker must be given: the default journal file, spelled out."""
    from sweeps.engines.base import JOURNAL_FILE

    return storage or f"journal:{local_dir / JOURNAL_FILE}"


def start_workers(
    sweep: Sweep,
    storage: str | None,
    workers: int,
    gpus: list[int] | None,
    workers_per_gpu: int,
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """Start the worker processes; each writes its output to a log file beside the stores."""
    from sweeps.running.devices import worker_env
    from tracking.store import local_dir

    folder = local_dir(sweep.uri) / ".sweeplab" / sweep.spec.name
    folder.mkdir(parents=True, exist_ok=True)
    spec_file = folder / "spec.yaml"
    spec_file.write_text(sweep.spec.to_yaml())
    url = storage_url(storage, local_dir(sweep.uri))
    started = []
    for index in range(workers):
        env = {**os.environ, **worker_env(index, workers, gpus, workers_per_gpu)}
        log = folder / f"worker-{index}.log"
        command = [
            sys.executable,
            "-m",
            "sweeps",
            "worker",
            str(spec_file),
            "--tracking-uri",
            sweep.uri,
            "--storage",
            url,
        ]
        with log.open("wb") as out:
            started.append((subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT), log))
    return started


def _tail(path: Path, lines: int = 1) -> str:
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) if text else "(no output)"


def _stopped(code: int | None, log: Path) -> str:
    """What a stopped worker said it recorded (its own interrupt line), else how it ended."""
    last = _tail(log)
    said = re.match(r"error: interrupted; (.*?)\. Run the same command again", last)
    if said:
        return said.group(1)
    if code in (0, None):
        return "had finished"
    return f"exited {code} without saying what it recorded (the next `sweep run` closes its trial's run)"


def run_with_workers(
    sweep: Sweep,
    storage: str | None,
    workers: int,
    gpus: list[int] | None = None,
    workers_per_gpu: int = 1,
    on_progress: OnProgress | None = None,
) -> SweepResult:
    """Run the sweep on `workers` processes and close it; interrupts stop them cleanly."""
    processes = start_workers(sweep, storage, workers, gpus, workers_per_gpu)
    status, reason = "FAILED", "error"
    try:
        while any(process.poll() is None for process, _ in processes):
            time.sleep(POLL_SECONDS)
            sweep.progress(on_progress)
        failed = [(i, p.returncode, log) for i, (p, log) in enumerate(processes) if p.returncode != 0]
        if failed:
            details = "; ".join(f"worker {i} exited {code}: {_tail(log)}" for i, code, log in failed)
            raise SweepFailed(f"{len(failed)} of {workers} workers failed ({details})")
        status, reason = "FINISHED", "budget"
    except KeyboardInterrupt:
        status, reason = "KILLED", "interrupted"
        for process, _ in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for index, (process, log) in enumerate(processes):
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            sweep.notes.append(f"worker {index}: {_stopped(process.returncode, log)}")
        raise
    finally:
        result = sweep.finish(status, reason)
    return result
