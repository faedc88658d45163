#!/usr/bin/env bash
# Programmatic dependent launch on the GPU machine, in one go: builds as
# scripts/gpu-run.sh does (carry .deps for PCRE2), runs the CUDA benchmark with the
# PDL A/B (--pdl-ab: every decode batch again with BANYAN_PDL's switch off), then
# the CUDA backend's tests, then compute-sanitizer memcheck and racecheck over the
# chained decode-layer tests. Writes to $OUT (default build/gpu-out): device.txt,
# build.txt, bench.txt, cuda_bench.json, tests.txt, memcheck.txt, racecheck.txt.
# Every stage has its own time limit, so that a slow one leaves the others' files.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
out="${OUT:-build/gpu-out}"
mkdir -p "$out"
status=0

SKIP_TESTS=1 SKIP_SANITIZER=1 SKIP_BENCH=1 OUT="$out" scripts/gpu-run.sh || exit 1
bin=build-gpu/bin
[[ -x $bin/banyan_bench_cuda ]] || bin=build-gpu-standalone/bin
lib=$(find "$root/.deps/root" -name 'libpcre2-8.so*' -print -quit 2>/dev/null)
[[ -n $lib ]] && export LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

timeout "${BENCH_TIMEOUT:-170}" "$bin/banyan_bench_cuda" --out "$out/cuda_bench.json" --pdl-ab \
  ${BENCH_ARGS:-} > "$out/bench.txt" 2>&1 || status=1
tail -n 20 "$out/bench.txt"

timeout "${TESTS_TIMEOUT:-150}" "$bin/banyan_kernels_cuda_tests" > "$out/tests.txt" 2>&1 || status=1
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|Failure|relative error|error:" "$out/tests.txt" | head -n 40

if command -v compute-sanitizer >/dev/null; then
  timeout "${MEMCHECK_TIMEOUT:-60}" compute-sanitizer --tool memcheck --error-exitcode 3 "$bin/banyan_kernels_cuda_tests" \
    --gtest_filter='CudaBackend.GraphChained*' > "$out/memcheck.txt" 2>&1 || status=1
  echo "memcheck: $(grep -E 'ERROR SUMMARY' "$out/memcheck.txt" | tail -n1) $(grep -E '^\[  (PASSED|FAILED)' "$out/memcheck.txt" | tr '\n' ' ')"
  timeout "${RACECHECK_TIMEOUT:-50}" compute-sanitizer --tool racecheck --error-exitcode 3 "$bin/banyan_kernels_cuda_tests" \
    --gtest_filter='CudaBackend.GraphChainedDecodeLayersMatchPlainLaunchesOneRow' > "$out/racecheck.txt" 2>&1 || status=1
  echo "racecheck: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/racecheck.txt" | tail -n1) $(grep -E '^\[  (PASSED|FAILED)' "$out/racecheck.txt" | tr '\n' ' ')"
fi
exit $status
