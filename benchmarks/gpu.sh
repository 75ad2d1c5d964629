#!/usr/bin/env bash
# GPU check (< 8 minutes, installs nothing): the base preset in bf16 on a CUDA card.
#   bash benchmarks/gpu.sh            # needs torch with CUDA and this package importable
# 1. encoder throughput and MFU of `base` beside nn.TransformerEncoder, at the full 1024-position
#    layout (R=128, L=7: every leaf group present, the worst case) and at the compact layout;
# 2. a few hundred training steps of `base` on synthetic samples: steps/s, tokens/s, peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python benchmarks/train.py --preset base --batch 32 --steps 20 --dtype bf16 --device cuda --groups 128
python benchmarks/train.py --preset base --batch 32 --steps 20 --dtype bf16 --device cuda
python benchmarks/train_steps.py --preset base --steps 200 --micro-batch 32
