#!/usr/bin/env bash
# Issue "image flows", item 8: the digits on a CUDA machine, as one short run (a lent GPU machine's lease is
# minutes). Runs from the repository root with the machine's own python3 (torch, torchdiffeq, safetensors,
# scikit-learn, Pillow); flowscope is put on the path from the source tree, the zoo from pretrained/.
# Writes its results under ${OUT:-/tmp/gpu-digits}; each step has its own time limit, the most important first.
#
#     bash bench/gpu_digits.sh
set -u
out=${OUT:-/tmp/gpu-digits}
mkdir -p "$out" /tmp/flowscope-src
ln -sfn "$PWD/core" /tmp/flowscope-src/flowscope
ln -sfn "$PWD/pretrained" /tmp/flowscope-src/flowscope_pretrained
export PYTHONPATH=/tmp/flowscope-src:$PWD/bench PYTHONUNBUFFERED=1 FLOWSCOPE_ZOO_DIR=$PWD/pretrained
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# 1. steps/s at batch 256 and 10,000 samples on the GPU (bf16 autocast, flowscope's default there)
timeout 150 python3 bench/bench_images.py --sections speed --devices cuda --out "$out/speed_cuda.md"
# 2. the CLI as a user runs it, no --device: it must pick CUDA; then guided samples of a 3
timeout 240 python3 -m flowscope train --dataset digits --conditional --out /tmp/digits-cond.safetensors \
    2>&1 | tr '\r' '\n' | grep -v 'step/s' | tee "$out/cli_train.txt"
timeout 60 python3 -m flowscope sample /tmp/digits-cond.safetensors --label 3 --guidance 1 -n 100 \
    --out "$out/sample3.npy" 2>&1 | tee "$out/cli_sample.txt"
# 3. the suite's CUDA test (exact marginal field on the GPU against the CPU)
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_fields.py -k cuda 2>&1 | tail -3
# 4. the same machine's CPU beside it (1,000 samples keep it short), then torch.compile on the GPU
timeout 150 python3 bench/bench_images.py --sections speed --devices cpu --cpu-samples 1000 --out "$out/speed_cpu.md"
timeout 150 python3 bench/bench_images.py --sections speed --devices cuda --compile --out "$out/speed_compile.md"
exit 0
