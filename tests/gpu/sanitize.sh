#!/usr/bin/env bash
# Runs tests/gpu/sanitize_run.ts (a small multi-stream CUDA workload: a two-stream fork/join
# captured into a graph, and a conv net as captured and eager sessions) under compute-sanitizer:
# racecheck (shared-memory races), then memcheck (out-of-bounds and misaligned accesses, leaks of
# device memory at exit are not checked: contexts are destroyed by finalizers). Needs a GPU that
# compute-sanitizer supports, build/libbraid_cuda.so (make cuda) and deno on PATH (or DENO=...).
# racecheck runs with BRAID_CONV_ENGINES=0: its subject is braid's own kernels (shared-memory
# races happen inside a kernel), which run either way, while cuDNN's Hopper engine kernels (TMA
# and mbarrier pipelines) are library code; memcheck keeps the engines, since it checks what
# braid hands cuDNN (operand pointers, workspace sizes).
# Usage: bash tests/gpu/sanitize.sh [log-dir]
set -u
cd "$(dirname "$0")/../.."
DENO=${DENO:-deno}
LOGS=${1:-/tmp}
SANITIZER=${SANITIZER:-compute-sanitizer}
command -v "$SANITIZER" >/dev/null || SANITIZER=/usr/local/cuda/bin/compute-sanitizer
status=0
for tool in racecheck memcheck; do
  log="$LOGS/sanitize_$tool.log"
  settings=()
  [ "$tool" = racecheck ] && settings=(BRAID_CONV_ENGINES=0)
  env "${settings[@]}" "$SANITIZER" --tool "$tool" --error-exitcode 3 --target-processes all \
    "$DENO" run --cached-only --allow-ffi --allow-read --allow-env tests/gpu/sanitize_run.ts \
    >"$log" 2>&1
  rc=$?
  echo "compute-sanitizer --tool $tool: exit $rc; $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -n 1)"
  grep -E '^sanitize_run:' "$log"
  [ "$rc" -eq 0 ] || status=1
done
exit $status
