"""The hand-run benchmarks run to their table on a CPU with tiny settings.

Why: they are run by hand or in a GPU session of a few minutes, where a crash in a code path the CPU never
took costs the whole session. These runs take their fast-path and compile branches (``--impl fast
--compile``; inductor needs the C++ compiler that CI's machines have) on the CPU; the
numbers they print are not checked (speed is not a unit test's business), only that every row is there.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                          timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_eval_throughput_prints_every_row():
    out = _run("eval_throughput.py", "--device", "cpu", "--detector", "tinycnn", "--images", "6", "--size", "32",
               "--batch", "4", "--iters", "1", "--workers", "1", "--impl", "fast", "--compile", "--train-cards", "mirage",
               "--backbone", "mb-tiny-clip", "--train-set", "params.depth=2", "--train-steps", "1", "--train-batch", "2",
               "--profile", "4")
    assert "(b) under torch.profiler, 4 images: " in out and "Self CPU time total" in out, out
    for row in ("(a) model-only forward", "(b) ours end-to-end", "(c) naive loop", "(d) fast path, data stage only",
                "(e) fast path without the model", "(a') model-only, torch.compile", "(b') ours end-to-end, torch.compile",
                "train mirage"):
        assert f"\n{row} | " in f"\n{out}", f"row {row!r} missing from:\n{out}"
    assert "fast (pil+cpu-degrade+cpu-preprocess, pil+cpu-ref-degrade+cpu-preprocess)" in out
    assert "first batch after" in out
    if sys.platform.startswith("linux"):  # row (d) names the memory the workers were forked from (RssAnon)
        forked = re.search(r"forked from (\d+\.\d+) GiB of anonymous memory", out)
        assert forked and float(forked.group(1)) > 0, out


def test_blur_throughput_reports_same_bytes():
    out = _run("blur_throughput.py", "--device", "cpu", "--images", "2", "--size", "40", "--repeats", "1")
    assert out.count("yes") == 2 and "NO" not in out, out


def test_resize_throughput_compares_both_resizes_with_pil():
    out = _run("resize_throughput.py", "--device", "cpu", "--images", "2", "--repeats", "1")
    rows = [[cell.strip() for cell in line.split("│")] for line in out.splitlines() if "(a) float32" in line or "(b) PIL's" in line]
    assert len(rows) == 6, out
    assert [row[-2] for row in rows if row[2].startswith("(b)")] == ["0", "0", "0"], out  # bit-exact with PIL


def test_device_traffic_counts_less_with_each_kernel():
    out = _run("device_traffic.py")
    rows = [[cell.strip() for cell in line.split("│")] for line in out.splitlines() if line.startswith("│ (")]
    assert [row[1][:3] for row in rows] == ["(a)", "(b)", "(c)"], out
    moved = [float(row[2]) for row in rows]
    assert moved[0] > moved[1] > moved[2] > 0, out


def test_blur_compile_counts_and_times_each_kernel_and_the_threaded_compile():
    pytest.importorskip("triton")
    out = _run("blur_compile.py", "--repeats", "1")
    assert "\n(a) Triton's default specialisation | " in f"\n{out}" and "\n(b) ours | 5 | " in out, out
    assert "\n(c) ours, compiled ahead in threads (" in out, out


def test_attention_throughput_prints_both_modules_and_each_sdpa_backend():
    out = _run("attention_throughput.py", "--device", "cpu", "--backbone", "mb-tiny-clip", "--batch", "4", "--iters", "1",
               "--compile", "--sdpa-backends", "math,flash")
    assert "open_clip nn.MultiheadAttention |" in out and "SelfAttention (3 blocks) |" in out, out
    assert "SelfAttention + one-op QuickGELU (3) |" in out and "... + class-token last block |" in out, out
    assert "SelfAttention, SDPA math only |" in out and "SelfAttention, SDPA flash only |" in out, out


def test_scan_throughput_prints_every_row():
    out = _run("scan_throughput.py", "--train", "3", "--val", "2", "--size", "32", "--workers", "2")
    for row in ("(a) before: every file, one process", "(b) first run: splits read, 2 processes",
                "(c) later run: unchanged files from the cache"):
        assert row in out, out
    assert "80 files of 32 px" in out, out


def test_cpu_threads_times_both_settings():
    out = _run("cpu_threads.py", "--workers", "1", "--steps", "2", "--rounds", "1", "--size", "64")
    assert re.search(r"torch default \(\d+ threads\) +\d", out) and re.search(r"cpu_threads \(\d+ thread\(s\)\) +\d", out), out


def test_progress_gaps_times_the_lines_of_data_index():
    out = _run("progress_gaps.py", "--files", "40", "--workers", "1")
    assert "decode and hash 40 images: done 40/40" in out and re.search(r"exit code 0, .* 5 lines; gaps \(s\): ", out), out


def test_metrics_throughput_agrees_with_scikit_learn_on_every_metric():
    out = _run("metrics_throughput.py", "--images", "300", "--boot", "20", "--naive-boot", "5")
    assert out.count("yes") == 7 and "NO" not in out and "all, one table cell" in out, out


def test_report_throughput_gives_the_same_table_with_any_thread_count():
    out = _run("report_throughput.py", "--cells", "3", "--images", "200", "--boot", "20", "--workers", "2")
    assert out.count("yes") == 2 and "NO" not in out, out


def test_models_throughput_gives_each_model_the_same_logits_in_one_pass():
    out = _run("models_throughput.py", "--device", "cpu", "--detectors", "tinycnn,tinycnn", "--set", "input.size=32",
               "--images", "4", "--batch", "4", "--workers", "1", "--varied", "--size-order")
    assert "\n(a) one pass per model (before) | " in f"\n{out}" and "\n(b) one pass for all models | " in out, out
    assert "| 0 | reference; one decode" in out, out  # max |logit difference| between the two rows
    row_c = next(line for line in out.splitlines() if line.startswith("(c) one pass for all, images in size order | "))
    assert float(row_c.split(" | ")[3]) < 1e-5, row_c  # other batches, so float rounding may differ a little
