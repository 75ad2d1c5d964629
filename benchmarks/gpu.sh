#!/usr/bin/env bash
# GPU check (< 8 minutes, installs nothing): the base preset in bf16 on a CUDA card.
#   bash benchmarks/gpu.sh            # needs torch with CUDA and this package importable
# 1. encoder throughput and MFU of `base` beside nn.TransformerEncoder, at the full 1024-position
#    layout (R=128, L=7: every leaf group present, the worst case) and at the compact layout;
# 2. 50 optimizer steps of `base` on synthetic samples at the reference run's effective batch of 128
#    (32 x 4 accumulated), eager, with the blocks compiled, and with FlexAttention (model.attention:
#    flex, never run on a GPU yet): steps/s, tokens/s, peak memory, MFU.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python benchmarks/train.py --preset base --batch 32 --steps 20 --dtype bf16 --device cuda --groups 128
python benchmarks/train.py --preset base --batch 32 --steps 20 --dtype bf16 --device cuda
python benchmarks/train_steps.py --preset base --steps 50 --micro-batch 32 --grad-accum 4
python benchmarks/train_steps.py --preset base --steps 50 --micro-batch 32 --grad-accum 4 --compile
python benchmarks/train_steps.py --preset base --steps 50 --micro-batch 32 --grad-accum 4 --attention flex
