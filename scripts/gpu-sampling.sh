#!/usr/bin/env bash
# The sampling op on the GPU machine (kernels/cuda/sampling.cu): builds the CUDA
# backend tests and the engine tests (Release, sm_90), runs the sampling op tests
# against the CPU op and times it (BANYAN_SAMPLING_BENCH), compute-sanitizer over
# them, then the engine and decoding tests on the GPU with the engine's sampled
# decode throughput (BANYAN_ENGINE_BENCH). Writes to $OUT (default build/gpu-out):
# device.txt, build.txt, sampling_tests.txt, sanitizer.txt, engine_tests.txt,
# sampling_bench.json, engine_bench.json.
# PCRE2 for the top-level configure as in scripts/gpu-run.sh (carry .deps).
# Environment: JOBS (16), SKIP_SANITIZER=1, SKIP_ENGINE=1.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-build/gpu-out}"
mkdir -p "$out"
jobs="${JOBS:-16}"
build=build-gpu-sampling
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$out/device.txt"

source scripts/gpu-env.sh  # PCRE2 for the configure

{
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBANYAN_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DBANYAN_TESTS=ON &&
    time cmake --build "$build" -j "$jobs" --target banyan_kernels_cuda_tests banyan_engine_tests \
      banyan_decoding_sampling banyan_decoding_parallel banyan_decoding_beam banyan_model_llama
} > "$out/build.txt" 2>&1 || { echo "build failed"; grep -E "error|FAILED" "$out/build.txt" | head -n 30; exit 1; }
bin="$build/bin"

BANYAN_SAMPLING_BENCH="$out/sampling_bench.json" timeout 150 "$bin/banyan_kernels_cuda_tests" \
  --gtest_filter='CudaSampling.*' > "$out/sampling_tests.txt" 2>&1 || status=1
grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|timing|tests ran|token " "$out/sampling_tests.txt" | head -n 60

if [[ -z ${SKIP_ENGINE:-} ]]; then
  BANYAN_TEST_DEVICE=cuda BANYAN_ENGINE_BENCH="$out/engine_bench.json" timeout 240 \
    "$bin/banyan_engine_tests" > "$out/engine_tests.txt" 2>&1 || status=1
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|\[ engine|bf16  |tests ran" "$out/engine_tests.txt" | head -n 60
fi
if [[ -z ${SKIP_SANITIZER:-} ]] && command -v compute-sanitizer >/dev/null; then
  timeout 60 compute-sanitizer --tool memcheck --error-exitcode 3 "$bin/banyan_kernels_cuda_tests" \
    --gtest_filter='CudaSampling.Ties*:CudaSampling.Every*' > "$out/sanitizer.txt" 2>&1 || status=1
  echo "compute-sanitizer: $(grep -E 'ERROR SUMMARY' "$out/sanitizer.txt" | tail -n1)"
fi

exit $status
