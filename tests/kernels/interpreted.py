"""Run a script in a fresh process under Triton's interpreter: CUDA kernels' arithmetic on the CPU. A fresh
process, because the interpreter is chosen when a kernel is defined (at import)."""

from __future__ import annotations

import os
import subprocess
import sys


def run_interpreted(script: str, *args: str, timeout: int = 300) -> None:
    subprocess.run([sys.executable, "-c", script, *args], check=True, env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=timeout)
