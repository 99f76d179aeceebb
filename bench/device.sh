#!/usr/bin/env bash
# One call of the GPU machine (no network), from the repository root, with .carry (Deno, from
# ../shared/tools/carry-deno) and node_modules carried. Builds both libraries, then runs the steps
# named, in order, each logging to $OUT/STEP.log (the JSON results land in $OUT too):
#   test-gpu         make test-gpu (every test, the GPU ones included, and compute-sanitizer)
#   compare-b1       PyTorch (eager, graph, Opara-style, compile) beside every braid scheduler
#   compare-b1-auto  the same with braid's sequential and auto only, without torch.compile
#   compare-quick    googlenet and inception_v3 only, without torch.compile
#   gpu-quick        the native and schedulers GPU tests only
#   gpu-partition    the partition GPU tests only (the pooled tune among them)
#   gpu-conv         the convolution GPU tests only (cuDNN's engine configurations, the tuner's
#                    switches)
#   gpu-switched     the native, schedulers' and partitions' GPU tests with the four switches
#                    of tuning-ab on
#   gpu-engines      the cuDNN engine-configuration GPU tests only, after the engine probe's
#                    tables for the device's own description ($OUT/cudnn-device.json) and
#                    cuDNN's description from a 32-SM partition's stream ($OUT/cudnn-device-in-32.json)
#   zoo-rest         braid alone (sequential, auto) on randwire and bert_base (no PyTorch twin)
#   compare-b16      the same at batch 16, without torch.compile
#   nasnet           nasnet_large (no torch.compile: it takes minutes)
#   onnx             bench/onnx_check.py exports + bench/onnx_check.ts import and compare
#                    (ONNX_MODELS=a,b a subset, ONNX_DEADLINE=S seconds for braid's half,
#                    ONNX_TAG=t names the JSON onnx_check-t.json)
#   pool-contention  bench/pool_contention.ts: host time per backend call when 1, 2, 4 threads
#                    measure stages at once on 32-SM partitions, stage graphs captured and then
#                    composed from op templates, and each thread's set-up of the model
#                    (JSON $OUT/pool_contention.json)
#   contention-probe csrc/tools/contention_probe.cu: a stage timer's driver calls at 1, 2 and 4
#                    threads on their own 32-SM green contexts, with the primary context current
#                    (as braid does), with each thread's green context current, and on plain
#                    streams, and a cudaMalloc/cudaFree beside them ($OUT/contention_probe.json;
#                    ~30 s)
#   startup-probe    bench/startup_probe.ts in fresh processes, three ending each way (BRAID_EXIT=fast,
#                    teardown): the library's open, cuInit, the primary context, the first and a
#                    second braid context, and each process's wall from outside (~15 s)
#   green-current    BRAID_PARTITION_BINDING=current beside the default binding (streams): the
#                    contention probe (primary and green, 1 and 4 threads), the partition GPU
#                    tests with it, then pool_contention's stages and trials at 1 and 4 threads
#                    each way; every file in $OUT/green-current.tgz (~5 minutes)
#   tuning-ab        where tuning's time goes, and the switches that may cut it, side by side:
#                    auto's trials on inception_v3 (1 and 4 threads on 32-SM partitions) timed
#                    isolated with every executable warmed up, then in rounds warming up once
#                    (BRAID_TRIAL_TIMING, BRAID_WARM_UP), then so with buffers from memory pools
#                    (BRAID_ALLOC=pool); its convolutions tuned with FindEx, then with cuDNN's
#                    heuristic ranking (BRAID_CONV_FIND), each tuning traced
#                    (BRAID_TRACE_CONV_TUNE: conv-trace-*.log.gz); its first 400 stages timed
#                    with two warm-up replays and none (BRAID_STAGE_WARMUPS); every file in
#                    $OUT/tuning-ab.tgz (~5 minutes)
#   tuning-c         (c) in two pairs as the defaults are and two with all four switches (tags
#                    base, switched), one pair with the switches but FindEx (switched3), the
#                    sessions each tuning chose run side by side (bench/cache_ab.ts), then one
#                    more switched pair with every backend call timed (BRAID_PROFILE_CALLS); every
#                    file in $OUT/tuning-c.tgz, the base and switched caches too (~5 minutes;
#                    after a failed gpu-switched step the switched set leaves BRAID_ALLOC=pool
#                    out; TUNING_SWITCHES="VAR=value …" replaces it)
#   c-levers         (c) with each set of switches in LEVERS (";"-separated sets of VAR=value,
#                    "-" for the defaults; default: the defaults, BRAID_PARTITION_BINDING=current,
#                    BRAID_STAGE_GRAPHS=compose, and both), LEVER_PAIRS pairs each (default 1),
#                    the sets taking turns pair by pair; JSON and logs in $OUT/c-levers.tgz
#   tree-ab          (c) on an older commit's TypeScript beside this tree's, AB_PAIRS pairs (default
#                    3), the trees taking turns (tags base-N, new-N); the older tree is made here
#                    with `git archive REV lib ffi bench mod.ts | tar -x -C bench/base` (ignored:
#                    pass bench/base in the call's carry) and runs on this tree's native library
#                    (its ABI must match);
#                    JSON and logs in $OUT/tree-ab.tgz (~30 s a run)
#   js-prof          V8 tick logs (--v8-flags=--prof) of one sequential and one pooled (c) tuning,
#                    every thread's summarized by bench/v8_ticks.py ($OUT/js-prof.txt; the logs,
#                    compressed, in $OUT/js-prof.tgz), each arm run once more after it with the
#                    convolutions' tuning traced and every backend call timed
#                    (BRAID_TRACE_CONV_TUNE, BRAID_PROFILE_CALLS; bench/conv_trace.py and
#                    bench/call_compare.py sum them into js-prof.txt); ~2 minutes
#   batch-quality    BQ_PAIRS (default 1) (c) pairs on the defaults and as many with
#                    BQ_SWITCHES ("VAR=value …", default BRAID_STAGE_BATCH=16; tagged BQ_LABEL,
#                    default batch16), taking turns, then the sessions each set's last pair chose
#                    run side by side (bench/cache_ab.ts, 32 SMs and the whole GPU); JSON, logs and
#                    caches in $OUT/batch-quality.tgz (~3 minutes a pair of each)
#   partition        bench/partition_bench.ts (PARTITION_PARTS=c,b a subset; its tuning
#                    caches in /tmp/partition-caches[-TAG], kept for a later call on the same
#                    machine, and packed into $OUT/partition-caches[-TAG].tgz; PARTITION_TAG=t
#                    names its JSON partition_*-t.json; PARTITION_PAIRS=N runs (c) N times, the
#                    arms' order alternating)
# BRAID_CONV_ENGINES=K in the environment: K cuDNN engine configurations of each kind tuned (0:
# none). BRAID_STAGE_GRAPHS=compose: stage graphs composed from op templates (default: captured).
# Usage: bash bench/device.sh test-gpu compare-b1
set -uo pipefail
xz -dc .carry/deno.xz >/tmp/deno && chmod +x /tmp/deno && export PATH=/tmp:$PATH
export OUT=${OUT:-/tmp/braid-out} PYTHONUNBUFFERED=1 NO_COLOR=1
mkdir -p "$OUT"
make -j16 cpu cuda >"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log"; exit 1; }
# The engine probe (cuDNN 9.8+) is a tool: a failure to build it is reported, and stops nothing
# but the steps that use it.
make -j16 engine-probe >>"$OUT/build.log" 2>&1 || echo "engine-probe did not build (build.log)"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu \
  --format=csv,noheader
cnn=${MODELS:-googlenet,inception_v3,squeezenet1_1,resnet50,densenet121}
all=sequential,sequential/copy,opara,nimble,ios,auto
# The contention probe, with 32 queues as libbraid_cuda sets them (the probe does not load it).
probe() { make contention-probe >&2 && CUDA_DEVICE_MAX_CONNECTIONS=32 ./build/contention_probe "$@"; }
# pool_contention.ts on captured stage graphs at 1 and 4 threads.
pc() { deno run --cached-only -A bench/pool_contention.ts --graphs capture --threads 1,4 "$@"; }
status=0
for step in "$@"; do
  start=$(date +%s)
  # A step with many files writes them in /tmp/STEP (emptied first: a warm machine keeps an
  # earlier call's) and packs them into $OUT/STEP.tgz after each part (few files come back from a
  # call; the archive is replaced whole, so a kill mid-pack keeps the last one). `failed` counts the
  # parts of such a step that failed: its exit status.
  work=/tmp/$step
  rm -rf "$work"
  failed=0
  pack() { tar czf "$OUT/.$step.tgz" -C "$work" . && mv "$OUT/.$step.tgz" "$OUT/$step.tgz"; }
  part() { "$@" || failed=$((failed + 1)); }
  # One (c) pair of partition_bench.ts ($2: this tree's or an older one's) from fresh caches,
  # tagged $1, its JSON in $work and its output in $work/$1.log, with the VAR=value settings after
  # them in its environment.
  c_run() {
    local tag=$1 script=$2
    shift 2
    rm -rf /tmp/c-run-caches && mkdir -p /tmp/c-run-caches
    part env "$@" deno run --cached-only -A "$script" --out "$work" --parts c --pairs 1 \
      --tag "$tag" --caches /tmp/c-run-caches >"$work/$tag.log" 2>&1
  }
  case "$step" in
    test-gpu) make test-gpu ;;
    compare-b1) bash bench/compare.sh --batch 1 --models "$cnn" --schedulers "$all" ;;
    compare-b1-auto) bash bench/compare.sh --batch 1 --models "$cnn" --no-compile \
      --schedulers sequential,auto ;;
    zoo-rest) deno run --cached-only -A bench/braid_latency.ts --models randwire,bert_base \
      --schedulers sequential,auto --json "$OUT/zoo-rest.json" ;;
    gpu-quick) BRAID_GPU_TESTS=1 deno test --cached-only -A tests/gpu/native_gpu_test.ts \
      tests/gpu/schedulers_gpu_test.ts ;;
    gpu-partition) BRAID_GPU_TESTS=1 deno test --cached-only -A tests/gpu/partition_gpu_test.ts ;;
    gpu-conv) BRAID_GPU_TESTS=1 deno test --cached-only -A tests/gpu/conv_engine_gpu_test.ts ;;
    gpu-switched) BRAID_TRIAL_TIMING=rounds BRAID_WARM_UP=once BRAID_CONV_FIND=heuristic \
      BRAID_ALLOC=pool BRAID_GPU_TESTS=1 deno test --cached-only -A tests/gpu/native_gpu_test.ts \
      tests/gpu/schedulers_gpu_test.ts tests/gpu/partition_gpu_test.ts ;;
    gpu-engines) # the probe's tables first; the tests run whatever became of them
      # What cuDNN sees of the device from a partition's stream (its SM count there).
      ./build/engine_probe --dump-device-in 32 >"$OUT/cudnn-device-in-32.json" &&
        grep -o -E '"(multiProcessorCount|smCountOrigin)" *: *[0-9]+' \
          "$OUT/cudnn-device-in-32.json" | sed 's/^/in a 32-SM partition: /'
      { ./build/engine_probe --dump-device >"$OUT/cudnn-device.json" &&
        deno run --cached-only -A bench/engine_probe.ts --device "$OUT/cudnn-device.json" &&
        deno run --cached-only -A bench/engine_probe.ts --device "$OUT/cudnn-device.json" \
          --whole-device --models googlenet; } || echo "engine probe: exit $?"
      BRAID_GPU_TESTS=1 deno test --cached-only -A tests/gpu/conv_engine_gpu_test.ts \
        tests/engine_probe_test.ts ;;
    compare-quick) bash bench/compare.sh --batch 1 --models googlenet,inception_v3 --no-compile \
      --schedulers sequential,opara,nimble,ios,auto ;;
    compare-b16) bash bench/compare.sh --batch 16 --models "$cnn" --no-compile \
      --schedulers sequential,auto ;;
    nasnet) bash bench/compare.sh --batch 1 --models nasnet_large --no-compile \
      --schedulers sequential,nimble,auto ;;
    onnx) python3 bench/onnx_check.py --dir /tmp/onnx ${ONNX_MODELS:+--models "$ONNX_MODELS"} &&
      deno run --cached-only -A bench/onnx_check.ts --dir /tmp/onnx \
        ${ONNX_MODELS:+--models "$ONNX_MODELS"} --deadline "${ONNX_DEADLINE:-1e9}" \
        --json "$OUT/onnx_check${ONNX_TAG:+-$ONNX_TAG}.json" ;;
    pool-contention) deno run --cached-only -A bench/pool_contention.ts \
      --json "$OUT/pool_contention.json" ;;
    contention-probe) probe --threads 1,2,4 --alloc >"$OUT/contention_probe.json" ;;
    green-current) # files in $OUT/green-current.tgz
      mkdir -p $work
      part probe --threads 1,4 --modes primary,green >$work/contention_probe.json
      pack
      BRAID_PARTITION_BINDING=current BRAID_GPU_TESTS=1 part deno test --cached-only -A \
        tests/gpu/partition_gpu_test.ts
      for kind in stages trials; do
        for binding in streams current; do
          BRAID_PARTITION_BINDING=$binding part pc --work $kind \
            --json $work/pool_$kind-$binding.json
          pack
        done
      done
      [ $failed -eq 0 ] ;;
    tuning-ab) # files in $OUT/tuning-ab.tgz
      mkdir -p $work
      BRAID_TRIAL_TIMING=isolated BRAID_WARM_UP=each part pc --work trials \
        --json $work/pool_trials-base.json
      BRAID_TRIAL_TIMING=rounds BRAID_WARM_UP=once part pc --work trials \
        --json $work/pool_trials-switched.json
      BRAID_TRIAL_TIMING=rounds BRAID_WARM_UP=once BRAID_ALLOC=pool part pc --work trials \
        --json $work/pool_trials-switched-pool.json
      pack
      for find in find heuristic; do
        # The trace to a file, gzipped after (a process substitution could still be writing it
        # when the pack runs).
        BRAID_CONV_FIND=$find BRAID_TRACE_CONV_TUNE=1 part pc --work convs \
          --json $work/pool_convs-$find.json 2>$work/conv-trace-$find.log
        gzip -f $work/conv-trace-$find.log
        pack
      done
      # Stage throughput with and without the warm-up replays (BRAID_STAGE_WARMUPS), last.
      for warmups in 2 0; do
        BRAID_STAGE_WARMUPS=$warmups part pc --work stages \
          --json $work/pool_stages-warmups$warmups.json
      done
      pack
      [ $failed -eq 0 ] ;;
    tuning-c) # files in $OUT/tuning-c.tgz
      mkdir -p $work
      pb() { deno run --cached-only -A bench/partition_bench.ts --out $work --parts c --pairs 2 "$@"; }
      # TUNING_SWITCHES replaces the switched set. Without it, the memory pools, the deepest change,
      # stay out of it when their GPU test did not pass in a gpu-switched step (this call's, or an
      # earlier one's on the same machine); another test's failure there does not take them out.
      switches="BRAID_TRIAL_TIMING=rounds BRAID_WARM_UP=once BRAID_CONV_FIND=heuristic"
      log=/tmp/braid-steps/gpu-switched.log
      if [ -f $log ] && ! grep -q "BRAID_ALLOC=pool: buffers.*\.\.\. ok" $log; then
        echo "the pool's GPU test did not pass in gpu-switched: the switched runs allocate directly"
      else
        switches="$switches BRAID_ALLOC=pool"
      fi
      switches=${TUNING_SWITCHES:-$switches}
      echo "switched: $switches"
      switched() { (export $switches && "$@"); }
      rm -rf /tmp/base /tmp/switched /tmp/switched3 /tmp/profiled
      mkdir -p /tmp/base /tmp/switched /tmp/switched3 /tmp/profiled
      BRAID_ALLOC=direct part pb --tag base --caches /tmp/base
      pack
      part switched pb --tag switched --caches /tmp/switched
      pack
      # The heuristic speeds the sequential arm's convolution tuning too: one pair without it.
      part switched env BRAID_CONV_FIND=find deno run --cached-only -A bench/partition_bench.ts \
        --out $work --parts c --pairs 1 --tag switched3 --caches /tmp/switched3
      pack
      # What each tuning chose, run side by side: the pool's (32 SMs) and the whole GPU's.
      for f in 32 whole; do
        part deno run --cached-only -A bench/cache_ab.ts --labels base,switched \
          --caches /tmp/base/partition_tuning_$f.json,/tmp/switched/partition_tuning_$f.json \
          --sms "$([ $f = whole ] && echo 0 || echo 32)" --json $work/cache_ab-$f.json
      done
      # The caches too: auto's trials (each candidate's name and time) for offline analysis.
      for arm in base switched; do
        for f in 32 whole; do cp /tmp/$arm/partition_tuning_$f.json $work/cache-$arm-$f.json; done
      done
      pack
      # One pair more, switched, with every backend call's host time (BRAID_PROFILE_CALLS).
      part switched env BRAID_PROFILE_CALLS=1 deno run --cached-only -A bench/partition_bench.ts \
        --out $work --parts c --pairs 1 --tag profiled --caches /tmp/profiled
      pack
      [ $failed -eq 0 ] ;;
    c-levers) # files in $OUT/c-levers.tgz; each set's pairs take turns with the others'
      mkdir -p $work
      levers=${LEVERS:-"-;BRAID_PARTITION_BINDING=current;BRAID_STAGE_GRAPHS=compose;BRAID_PARTITION_BINDING=current BRAID_STAGE_GRAPHS=compose"}
      IFS=';' read -ra sets <<<"$levers"
      for pair in $(seq 1 "${LEVER_PAIRS:-1}"); do
        for set in "${sets[@]}"; do
          tag=$(echo "$set" | sed 's/BRAID_//g; s/[^A-Za-z0-9]\+/-/g; s/^-*//; s/-*$//')
          tag=${tag:-defaults}-$pair
          echo "== $tag: $set"
          if [ "$set" = "-" ]; then c_run "$tag" bench/partition_bench.ts; else
            c_run "$tag" bench/partition_bench.ts $set
          fi
          grep -h "^(c) pair\|^(c) pool:\|error" $work/$tag.log | cut -c1-300
          pack
        done
      done
      [ $failed -eq 0 ] ;;
    tree-ab) # (c) with an older tree (bench/base: carried) beside this one; JSON and logs in
      # $OUT/tree-ab.tgz
      if [ ! -f bench/base/bench/partition_bench.ts ] || [ ! -f bench/base/mod.ts ]; then
        echo "bench/base is missing: git archive REV lib ffi bench mod.ts | tar -x -C bench/base;" \
          "carry it"
        exit 1
      fi
      mkdir -p $work
      for pair in $(seq 1 "${AB_PAIRS:-3}"); do
        order="base new"
        [ $((pair % 2)) = 0 ] && order="new base"
        for tree in $order; do
          script=bench/partition_bench.ts
          [ $tree = base ] && script=bench/base/bench/partition_bench.ts
          # The native library is this tree's build (the older tree has none of its own).
          c_run "$tree-$pair" $script BRAID_LIB=$PWD/build
          grep -h "^(c) outside\|workers' start\|error" $work/$tree-$pair.log | cut -c1-300
          pack
        done
      done
      [ $failed -eq 0 ] ;;
    js-prof) # text in $OUT/js-prof.txt, logs in $OUT/js-prof.tgz
      mkdir -p $work/models
      files=""
      for m in googlenet inception_v3 resnet50 densenet121; do
        part deno run --cached-only -A lib/cli/main.ts zoo $m -o $work/models/$m.braid >/dev/null
        files="$files $work/models/$m.braid"
      done
      # $1: Deno's flags (may be empty); the rest: braid tune's.
      tune() {
        local flags=$1
        shift
        deno run --cached-only -A $flags lib/cli/main.ts tune $files "$@"
      }
      # An untimed run first, as partition_bench's: Deno's code cache and the driver warmed.
      tune "" --cache /tmp/js-prof-warm.json --scheduler sequential >/dev/null
      for arm in sequential pooled; do
        extra=""
        [ $arm = pooled ] && extra="--sms 32 --concurrent"
        rm -f isolate-*.log /tmp/js-prof-$arm.json
        part tune --v8-flags=--prof $extra --cache /tmp/js-prof-$arm.json \
          --json $work/$arm.json >$work/$arm.log 2>&1
        tail -n 2 $work/$arm.log
        mkdir -p $work/$arm && mv isolate-*.log $work/$arm/
        python3 bench/v8_ticks.py --top 40 $work/$arm/*.log >>"$OUT/js-prof.txt"
        xz -T4 $work/$arm/*.log
        # Once more without the profiler, the convolutions' tuning traced and every backend
        # call timed (BRAID_TRACE_CONV_TUNE, BRAID_PROFILE_CALLS).
        rm -f /tmp/js-prof-$arm.json
        BRAID_TRACE_CONV_TUNE=1 BRAID_PROFILE_CALLS=1 part tune "" $extra \
          --cache /tmp/js-prof-$arm.json --json $work/$arm-traced.json >$work/$arm-traced.log 2>&1
        python3 bench/conv_trace.py $work/$arm-traced.log | tee -a "$OUT/js-prof.txt"
      done
      python3 bench/call_compare.py $work/sequential-traced.json $work/pooled-traced.json |
        tee -a "$OUT/js-prof.txt"
      rm -rf $work/models
      pack
      [ $failed -eq 0 ] ;;
    batch-quality) # files in $OUT/batch-quality.tgz; the sets take turns, pair by pair
      mkdir -p $work
      switches=${BQ_SWITCHES:-BRAID_STAGE_BATCH=16}
      label=${BQ_LABEL:-batch16}
      for pair in $(seq 1 "${BQ_PAIRS:-1}"); do
        for set in defaults $label; do
          if [ $set = defaults ]; then c_run $set-$pair bench/partition_bench.ts; else
            c_run $set-$pair bench/partition_bench.ts $switches
          fi
          grep -h "^(c) pair\|^(c) pool:\|error" $work/$set-$pair.log | cut -c1-300
          # The last pair's caches are the ones compared.
          rm -rf /tmp/bq-$set && cp -r /tmp/c-run-caches /tmp/bq-$set
          for f in 32 whole; do cp /tmp/bq-$set/partition_tuning_$f.json $work/cache-$set-$f.json; done
          pack
        done
      done
      for f in 32 whole; do
        part deno run --cached-only -A bench/cache_ab.ts --labels defaults,$label \
          --caches /tmp/bq-defaults/partition_tuning_$f.json,/tmp/bq-$label/partition_tuning_$f.json \
          --sms "$([ $f = whole ] && echo 0 || echo 32)" --json $work/cache_ab-$f.json
      done
      pack
      [ $failed -eq 0 ] ;;
    startup-probe)
      for mode in fast teardown fast teardown fast teardown; do
        began=$(date +%s%N)
        line=$(BRAID_EXIT=$mode deno run --cached-only -A bench/startup_probe.ts) ||
          failed=$((failed + 1))
        echo "$mode: process $((($(date +%s%N) - began) / 1000000)) ms: $line"
      done
      [ $failed -eq 0 ] ;;
    partition) # its tuning caches kept in /tmp (for (b) and (a) alone in a later call on the same
      # machine) and packed into $OUT/partition-caches[-TAG].tgz
      caches=/tmp/partition-caches${PARTITION_TAG:+-$PARTITION_TAG}
      mkdir -p "$caches"
      part deno run --cached-only -A bench/partition_bench.ts --out "$OUT" \
        --parts "${PARTITION_PARTS:-c,b,a}" --caches "$caches" \
        ${PARTITION_TAG:+--tag "$PARTITION_TAG"} --pairs "${PARTITION_PAIRS:-1}"
      tar czf "$OUT/$(basename "$caches").tgz" -C "$caches" .
      [ $failed -eq 0 ] ;;
    *) echo "unknown step $step" ;;
  esac >"$OUT/$step.log" 2>&1
  rc=$?
  # Each step's exit status and log, for the steps after it (tuning-c reads gpu-switched's).
  mkdir -p /tmp/braid-steps && echo $rc >"/tmp/braid-steps/$step.rc"
  cp "$OUT/$step.log" "/tmp/braid-steps/$step.log"
  [ $rc -eq 0 ] || status=1
  echo "== $step: exit $rc in $(($(date +%s) - start)) s"
  grep -E "^(ok|FAILED) \||FAILED|compute-sanitizer|error:|^in a 32-SM partition" \
    "$OUT/$step.log" | tail -n 10
done
exit $status
