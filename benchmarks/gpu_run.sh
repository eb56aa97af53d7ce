#!/usr/bin/env bash
# The one prepared GPU session (device tool): CUDA tests, the blur and throughput benchmarks, an engine run on CUDA.
# Run from the repo root on the GPU machine with the wheels in .whl (open_clip, ftfy, wcwidth, pydantic):
#   bash benchmarks/gpu_run.sh            (writes logs to $OUT when set, else to ./gpu-logs)
# .whl is git-ignored: the device tool must carry it (carry [".whl"], timeout 600 s).
# Budget: at most 9.5 minutes in all (tests 90 s, blur 60 s, throughput 280 s + 50 s varied sizes, engine 80 s), inside one 10-minute call.
# 2,048 images as in the 2026-11-26 H100 row; rows (b) and (b') also print the rate after the first batch.
set -uo pipefail
LOGS="${OUT:-gpu-logs}"; mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$LOGS/device.txt"
python3 -c "import torch, torchvision, open_clip; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'open_clip', open_clip.__version__)" | tee -a "$LOGS/device.txt"
echo "== CUDA tests"; timeout 90 python3 -m pytest tests/gpu -q -s -p no:cacheprovider 2>&1 | tee "$LOGS/gpu_tests.log" | grep -v "^WARNING" | tail -12
echo "== blur"; timeout 60 python3 benchmarks/blur_throughput.py --images 64 2>&1 | grep -v "^WARNING" | tee "$LOGS/blur.log"
echo "== throughput"; timeout 280 python3 benchmarks/eval_throughput.py --device cuda --images 2048 --batch 256 --workers 15 --no-train --compile 2>&1 | grep -v "^WARNING" | tee "$LOGS/throughput.log"
echo "== throughput, JPEGs of varied sizes"; timeout 50 python3 benchmarks/eval_throughput.py --device cuda --images 512 --batch 256 --workers 15 --no-train --no-naive --varied 2>&1 | grep -v "^WARNING" | tee "$LOGS/throughput_varied.log"
echo "== engine on CUDA (mini protocol, fast path)"; timeout 80 python3 -m mirage_bench run --device cuda --impl fast --out /tmp/gpu-run 2>&1 | grep -v "━\|WARNING" | tee "$LOGS/engine_run.log" | tail -30
