"""Whether a trial's worker died, told from its host, pid and start time (real processes)."""

from __future__ import annotations

import socket
import subprocess

import psutil

from sweeps.engines.liveness import is_dead


def test_a_live_worker_is_alive_even_if_start_times_disagree_by_a_second() -> None:
    process = subprocess.Popen(["sleep", "30"])
    try:
        started = psutil.Process(process.pid).create_time()
        worker = {"host": socket.gethostname(), "pid": process.pid}
        assert not is_dead({**worker, "started": started})
        # Another process may read the boot time a second apart (a clock adjusted under a VM).
        assert not is_dead({**worker, "started": started + 1.0})
        assert is_dead({**worker, "started": started - 60})  # the pid now belongs to another process
        assert not is_dead({**worker, "host": "elsewhere", "started": started - 60})  # the heartbeat's job
    finally:
        process.kill()
        process.wait()
    assert is_dead({"host": socket.gethostname(), "pid": process.pid, "started": started})
