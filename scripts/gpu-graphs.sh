#!/usr/bin/env bash
# Decode graphs on the GPU machine (core/runtime/decode_graphs.*): builds the runtime,
# engine and adapter tests (Release, sm_90), runs the decode-graph tests on the GPU
# (replays bit for bit against the same padded step run op by op), the runner's
# decode throughput with and without graphs (BANYAN_GRAPHS_BENCH; shapes from
# GRAPHS_SHAPES, default "1b,8b"), compute-sanitizer over the graph tests, then the
# engine and CUDA adapter tests (which run with graphs by default). Writes to $OUT
# (default build/gpu-out): device.txt, build.txt, graphs_tests.txt, graphs_bench.txt,
# graphs_bench.json, sanitizer.txt, engine_tests.txt, adapter_tests.txt.
# PCRE2 for the top-level configure as in scripts/gpu-run.sh (carry .deps).
# Environment: JOBS (16), SKIP_SANITIZER=1, SKIP_ENGINE=1, BUDGET_S (440: later
# steps are skipped once this many seconds have passed).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-build/gpu-out}"
mkdir -p "$out"
jobs="${JOBS:-16}"
budget="${BUDGET_S:-440}"
build=build-gpu-graphs
status=0
left() { echo $((budget - SECONDS)); }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$out/device.txt"

source scripts/gpu-env.sh  # PCRE2 for the configure

# The runtime tests first (what this script is about), then the rest, keeping on
# past failures of other targets.
{
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBANYAN_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DBANYAN_TESTS=ON &&
    time cmake --build "$build" -j "$jobs" --target banyan_runtime_tests banyan_model_llama
} > "$out/build.txt" 2>&1 || { echo "build failed"; grep -E "error|FAILED" "$out/build.txt" | head -n 30; exit 1; }
bin="$build/bin"
echo "runtime tests built at ${SECONDS}s"

BANYAN_TEST_DEVICE=cuda timeout 120 "$bin/banyan_runtime_tests" --gtest_filter='DecodeGraphs*' \
  > "$out/graphs_tests.txt" 2>&1 || status=1
grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|graphs \]|tests ran|Expected|Which is" "$out/graphs_tests.txt" | head -n 40

if (( $(left) > 100 )); then
  BANYAN_TEST_DEVICE=cuda BANYAN_GRAPHS_BENCH="$out/graphs_bench.json" \
    BANYAN_GRAPHS_BENCH_SHAPES="${GRAPHS_SHAPES:-1b,8b}" timeout $(( $(left) - 40 )) \
    "$bin/banyan_runtime_tests" --gtest_filter='DecodeGraphsGpu.DecodeThroughput' \
    > "$out/graphs_bench.txt" 2>&1 || status=1
  grep -E "bench \]|FAILED|Failure" "$out/graphs_bench.txt" | head -n 30
fi

if [[ -z ${SKIP_SANITIZER:-} ]] && command -v compute-sanitizer >/dev/null && (( $(left) > 60 )); then
  BANYAN_TEST_DEVICE=cuda timeout $(( $(left) > 150 ? 90 : 40 )) compute-sanitizer --tool memcheck \
    --error-exitcode 3 "$bin/banyan_runtime_tests" --gtest_filter='DecodeGraphsGpu.Adapter*' \
    > "$out/sanitizer.txt" 2>&1 || status=1
  echo "compute-sanitizer: $(grep -E 'ERROR SUMMARY' "$out/sanitizer.txt" | tail -n1)"
fi

if [[ -z ${SKIP_ENGINE:-} ]] && (( $(left) > 90 )); then
  timeout $(( $(left) - 20 )) cmake --build "$build" -j "$jobs" -- -k 0 banyan_engine_tests \
    banyan_adapters_tests banyan_decoding_sampling banyan_decoding_parallel banyan_decoding_beam \
    banyan_adapter_lora >> "$out/build.txt" 2>&1
  echo "engine tests built at ${SECONDS}s"
  if [[ -x $bin/banyan_engine_tests ]] && (( $(left) > 20 )); then
    BANYAN_TEST_DEVICE=cuda timeout $(( $(left) * 2 / 3 )) "$bin/banyan_engine_tests" \
      > "$out/engine_tests.txt" 2>&1 || status=1
    grep -E "^\[  (FAILED|PASSED) |Failure|tests ran" "$out/engine_tests.txt" | head -n 30
  fi
  if [[ -x $bin/banyan_adapters_tests ]] && (( $(left) > 10 )); then
    timeout $(( $(left) )) "$bin/banyan_adapters_tests" --gtest_filter='*Cuda*' \
      > "$out/adapter_tests.txt" 2>&1 || status=1
    grep -E "^\[  (FAILED|PASSED) |Failure|tests ran|identical" "$out/adapter_tests.txt" | head -n 30
  fi
fi
echo "done at ${SECONDS}s"
exit $status
