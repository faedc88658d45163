#!/usr/bin/env bash
# The GPU side of the weight quantizers (core/quant, kernels/cuda/quant_gemm.cu) on the
# GPU machine: builds banyan_quant_tests and banyan_bench_quant_gpu (Release, sm_90),
# runs the GPU quantizer tests and the Llama-3-8B-shape benchmark, and writes to $OUT
# (default build/gpu-out): device.txt, build.txt, tests.txt, bench.txt, quant_gpu.json.
# PCRE2 for the top-level configure as in scripts/gpu-run.sh (carry .deps).
# Environment: JOBS (16), SKIP_TESTS=1, SKIP_BENCH=1, BENCH_ARGS (extra bench flags).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-build/gpu-out}"
mkdir -p "$out"
jobs="${JOBS:-16}"
build=build-gpu-quant
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$out/device.txt"

source scripts/gpu-env.sh  # PCRE2 for the configure

{
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBANYAN_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DBANYAN_TESTS=ON &&
    time cmake --build "$build" --target banyan_quant_tests banyan_bench_quant_gpu -j "$jobs"
} > "$out/build.txt" 2>&1 || { echo "build failed"; tail -n 40 "$out/build.txt"; exit 1; }

if [[ -z ${SKIP_TESTS:-} ]]; then
  "$build/bin/banyan_quant_tests" --gtest_filter='*QuantCuda*:*QuantW8A8*:*QuantParity*' 2>&1 |
    tee "$out/tests.txt" | grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|error|tests ran" | head -n 60
  [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
fi
if [[ -z ${SKIP_BENCH:-} ]]; then
  "$build/bin/banyan_bench_quant_gpu" --batches 1,64 --out "$out/quant_gpu.json" ${BENCH_ARGS:-} 2>&1 |
    tee "$out/bench.txt" || status=1
fi
exit $status
