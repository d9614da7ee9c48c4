"""Shared test set-up: headless Qt, small thread counts, and a clean exit status.

PySide6 6.11/6.12 with pyqtgraph 0.14 can crash at interpreter exit after every test passed
(rc 134/139). We end the process ourselves with pytest's real exit status once it is known.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import pytest

_exit_status: dict[str, int] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status["rc"] = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    rc = _exit_status.get("rc")
    if rc is None or "PYTEST_XDIST_WORKER" in os.environ:
        return
    if "PySide6" not in __import__("sys").modules:
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Test tensors are tiny: one thread is fastest, and on a shared 2-core machine OpenMP
    spin-waiting makes multi-threaded runs up to 10x slower. Restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _error_reports_in_tmp(tmp_path_factory, monkeypatch):
    """Error reports (core.crash_report) of tests go to a temporary folder, not the user's cache."""
    monkeypatch.setenv("DEBLUR_LOG_DIR", str(tmp_path_factory.mktemp("error-reports")))


# the napari widget tests need an OpenGL display: tests/test_napari_plugin.py runs them in their
# own process on a virtual display (DEBLUR_NAPARI_TESTS=1)
collect_ignore = [] if os.environ.get("DEBLUR_NAPARI_TESTS") else ["napari_widget"]
