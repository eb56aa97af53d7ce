#!/usr/bin/env bash
# Rewrite results/baselines/mini, the regression gate's baseline (tests/test_regression_gate.py), after a change that
# is meant to move its results. The gate's detectors train on the mini protocol with three seeds under four CPU
# kernel settings, each in its own store (PyTorch reads these variables when it loads); the first store is the anchor
# whose checkpoints are committed, the others widen the trained part's tolerances. About 10 minutes on 2 cores.
# Usage: results/baselines/update-mini.sh [WORK_DIR]   (default: a new temporary folder; nothing in it is deleted)
set -euo pipefail
cd "$(dirname "$0")/../.."
work="${1:-$(mktemp -d)}"
run=(run --detectors tinycnn,npr-mini,mirage-mini --seeds 0,1,2 --bootstrap 0)
python3 -m mirage_bench "${run[@]}" --out "$work/native"
ATEN_CPU_CAPABILITY=default python3 -m mirage_bench "${run[@]}" --out "$work/aten-default"
ONEDNN_MAX_CPU_ISA=AVX2 python3 -m mirage_bench "${run[@]}" --out "$work/onednn-avx2"
ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python3 -m mirage_bench "${run[@]}" --out "$work/all-avx2"
python3 -m mirage_bench check --update --store "$work/native" --baseline results/baselines/mini \
    --spread "$work/aten-default" --spread "$work/onednn-avx2" --spread "$work/all-avx2"
echo "runs kept in $work"
