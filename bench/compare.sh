#!/usr/bin/env bash
# The side-by-side comparison on the GPU machine: PyTorch (eager, CUDA graph, torch.compile) and
# braid's sequential CUDA graph, in one command. Usage (repository root, on the device):
#   bash bench/compare.sh [--batch N] [--models a,b] [--schedulers s,t] [--no-compile]
# Results: bench/results/compare-*.json (and $OUT when set), table on stdout.
set -euo pipefail
batch=1 models=googlenet,inception_v3,squeezenet1_1,resnet50,densenet121 compile=--compile
schedulers=sequential
while [ $# -gt 0 ]; do
  case "$1" in
    --batch) batch=$2; shift ;;
    --models) models=$2; shift ;;
    --schedulers) schedulers=$2; shift ;;
    --no-compile) compile= ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
tmp=$(mktemp -d)
export PYTHONUNBUFFERED=1
python3 bench/torch_baseline.py --models "$models" --batch "$batch" $compile --json "$tmp/torch.json"
deno run --cached-only -A bench/braid_latency.ts --models "$models" --schedulers "$schedulers" \
  --batch "$batch" --json "$tmp/braid.json"
out=bench/results/compare-b$batch-$(date -u +%Y%m%dT%H%M).json
deno run --cached-only -A bench/compare.ts "$tmp/torch.json" "$tmp/braid.json" --out "$out"
if [ -n "${OUT:-}" ]; then cp "$out" "$OUT/"; fi
