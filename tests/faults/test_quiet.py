"""The CLI's output starts with its own first line: TensorFlow's start-up lines are kept out
(unless --verbose), and what native code writes that is not start-up chatter still shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, sweep_cli
from tests.faults.conftest import TINY, write_spec

NOISE = ("oneDNN", "cuda drivers", "absl::InitializeLog", "cuInit", "I0000", "W0000")


def test_sweep_run_prints_only_its_own_lines(swept) -> None:
    _, result = swept  # a whole `sweep run`, with TensorFlow left to its default log level
    assert result.stdout.splitlines()[0].startswith("devices: backend tensorflow")
    for noise in NOISE:
        assert noise not in result.stderr and noise not in result.stdout, noise


@pytest.mark.slow
def test_verbose_shows_tensorflows_lines(tracking_uri: str, workdir: Path) -> None:
    write_spec(workdir, {**TINY, "budget": {"trials": 1}})
    result = sweep_cli(
        "run",
        "spec.yaml",
        "--tracking-uri",
        tracking_uri,
        "--verbose",
        cwd=workdir,
        env={"TF_CPP_MIN_LOG_LEVEL": ""},
    )
    assert result.returncode == 0, result.stderr
    # Which start-up lines TensorFlow prints depends on the CPU (oneDNN's only where it has
    # AVX-512): any of them shows that they were let through.
    assert any(noise in result.stderr for noise in NOISE), result.stderr[-2000:]


FILTER_SCRIPT = r"""
import os, sys
from sweeps.cli.quiet import native_stderr_filtered
print("python before", file=sys.stderr)
with native_stderr_filtered():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    os.write(2, b"I0000 00:00:1796161800.390152   14077 port.cc:153] oneDNN custom operations are on.\n")
    os.write(2, b"E0000 00:00:1796161800.5   14077 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n")
    os.write(2, b"E0000 00:00:1796161800.6   14077 kernel.cc:9] a real error\n")
    print("python inside", file=sys.stderr)
    os.write(2, b"F0000 00:00:1796161800.7   14077 check.cc:1] Check failed: x\n")
print("python after", file=sys.stderr)
"""


def test_native_filter_drops_start_up_lines_and_keeps_the_rest() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FILTER_SCRIPT],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "python before",
        "E0000 00:00:1796161800.6   14077 kernel.cc:9] a real error",
        "python inside",
        "F0000 00:00:1796161800.7   14077 check.cc:1] Check failed: x",
        "python after",
    ]


def test_a_failed_import_of_tensorflow_still_shows_its_error(workdir: Path) -> None:
    """The filter wraps the real import: a broken TensorFlow install must still say why."""
    fake = workdir / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import os\nos.write(2, b'W0000 00:00:1.0   1 port.cc:1] noise\\n')\n"
        "raise ImportError('libcudart.so.12: cannot open shared object file')\n"
    )
    script = (
        "from sweeps.cli.quiet import quiet_tensorflow\nquiet_tensorflow()\n"
        "try:\n    import tensorflow\nexcept ImportError as exc:\n    print('caught', exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{workdir / 'fake'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.stdout.strip() == "caught libcudart.so.12: cannot open shared object file"
    assert "noise" not in result.stderr
