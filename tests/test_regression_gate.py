"""The project's own regression gate, run as another machine would run it: under other CPU kernels.

The baseline (``results/baselines/mini``) was written by ``results/baselines/update-mini.sh``: the gate's detectors
trained on the mini protocol with three seeds under four kernel settings, and one checkpoint of each committed with its
logits. PyTorch reads these variables once, when it loads, so each setting runs in its own process; the check runs
there too, so that the committed checkpoints are also scored with those kernels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASELINE = Path(__file__).resolve().parent.parent / "results" / "baselines" / "mini"
GATE_DETECTORS = "tinycnn,npr-mini,mirage-mini"
KERNELS = {
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},  # ATen's portable kernels, as on a CPU without AVX
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},  # oneDNN's convolutions as on an AVX2 machine
}


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirage_bench", *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("kernels", list(KERNELS), ids=list(KERNELS))
def test_mini_run_passes_the_committed_gate_under_other_cpu_kernels(tmp_path, kernels):
    env = KERNELS[kernels]
    run = _cli(["run", "--detectors", GATE_DETECTORS, "--out", str(tmp_path), "--bootstrap", "0"], env)
    assert run.returncode == 0, run.stdout + run.stderr
    check = _cli(["check", "--store", str(tmp_path), "--baseline", str(BASELINE)], env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "check passed" in check.stdout
