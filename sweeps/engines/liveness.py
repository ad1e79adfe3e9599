"""Is the worker that started a trial still alive? A trial whose worker died is stale.

Each trial records its worker (host, pid, process start time). On the same host a dead
pid (or a pid reused by another process) settles it at once; across hosts the RDB
storage's heartbeat does, after its grace period.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import psutil

WORKER_ATTR = "sweeplab_worker"
HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 20
# psutil computes a start time from the boot time each process reads once, from the wall clock
# (/proc/stat btime): two processes can disagree by a second where the clock is adjusted (VMs,
# NTP). A pid reused by a new process starts far later than that.
START_TOLERANCE_S = 2.0


def this_worker() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": psutil.Process(pid).create_time()}


def is_dead(worker: dict[str, Any] | None) -> bool:
    """True only when the worker surely died: it ran on this host and its process is gone."""
    if not worker or worker.get("host") != socket.gethostname():
        return False
    try:
        process = psutil.Process(int(worker["pid"]))
        reused = abs(process.create_time() - float(worker["started"])) > START_TOLERANCE_S
        return reused or process.status() == "zombie"
    except psutil.NoSuchProcess:
        return True


class Heartbeat:
    """Records an RDB storage heartbeat for one trial while it runs (Optuna only does this
    inside `study.optimize`; sweeplab runs trials with ask/tell to keep its budget exact)."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sweeplab-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            self._storage.record_heartbeat(self._trial_id)
            if self._stop.wait(HEARTBEAT_SECONDS):
                return

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
