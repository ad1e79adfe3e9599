"""Keep TensorFlow's and absl's start-up lines out of the CLI's output (unless `--verbose`).

TensorFlow's C++ runtime writes them to file descriptor 2 while `import tensorflow` loads
its shared libraries, before Python logging exists and whatever TF_CPP_MIN_LOG_LEVEL says
(TensorFlow 2.21 prints the oneDNN notice and "Could not find cuda drivers", twice, even at
level 3; TF_ENABLE_ONEDNN_OPTS=0 would silence one of them by making the CPU slower). So
the first import of tensorflow, whichever module triggers it, runs with fd 2 pointed at a
temporary file; afterwards the known start-up lines are dropped and every other line (a
real error) is written to stderr as it came. TensorFlow's first look for GPUs, which logs a
failed cuInit on machines without a GPU driver, is made inside the same filter.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

__all__ = ["VERBOSE_ENV", "is_noise", "native_stderr_filtered", "quiet_tensorflow"]

VERBOSE_ENV = "SWEEPLAB_VERBOSE"  # set by `sweep --verbose`, inherited by the workers it starts

# absl's prefix: severity letter, MMDD, time (before absl is initialised: 00:00:<epoch>), thread, file:line]
_ABSL = r"[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
_NOISE = re.compile(
    "|".join(
        [
            r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
            r"^[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] ",  # absl INFO and WARNING lines
            r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler",
            # ERROR lines that only say a machine has no usable GPU driver, or that a CUDA
            # plugin registered twice: known start-up noise of CUDA builds of TensorFlow.
            rf"^{_ABSL}failed call to cuInit",
            rf"^{_ABSL}Unable to register cu\w+ factory",
            rf"^{_ABSL}computation placer already registered",
        ]
    )
)


def is_noise(line: str) -> bool:
    """Whether a line TensorFlow's native code wrote is start-up chatter (kept out)."""
    return bool(_NOISE.search(line))


@contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Run the body with fd 2 captured in a temporary file, then write back what is not noise.

    Python's `sys.stderr` is flushed before and after, so its lines keep their order.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not is_noise(line.rstrip("\n"))
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _find_devices(tensorflow: ModuleType) -> None:
    """Let TensorFlow look for GPUs now, inside the filter: the first look logs a failed cuInit
    on machines without a GPU driver, whichever later call makes it. (Listing devices does not
    initialise them, so memory growth can still be set afterwards.)"""
    try:
        tensorflow.config.list_physical_devices()
    except Exception:  # an import that half worked still reports its own errors later
        pass


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of `tensorflow` inside `native_stderr_filtered`."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        try:
            with native_stderr_filtered():
                self._loader.exec_module(module)
                _find_devices(module)
        finally:  # the module keeps its own loader, as if it had been imported plainly
            module.__loader__ = self._loader
            if spec is not None:
                spec.loader = self._loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as the other finders would, once, and wraps its loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # the first import only; the others find it in sys.modules
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def quiet_tensorflow() -> None:
    """Before TensorFlow is imported: its start-up lines filtered out, its INFO and WARNING
    logs off (errors still show), its Python warnings (e.g. retracing) off."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
