#!/usr/bin/env bash
# Builds the CUDA backend (Release, sm_90) on the GPU machine, runs its GPU tests
# (and compute-sanitizer over the attention tests), then the CUDA benchmark, and
# writes everything to $OUT (default build/gpu-out):
#   device.txt, build.txt, tests.txt, sanitizer.txt, bench.txt, cuda_bench.json
# The top-level configure needs PCRE2 headers, which the GPU machine lacks: carry
# .deps holding `apt-get download libpcre2-dev libpcre2-8-0` (the .deb files);
# they are unpacked here. If the top-level configure still fails, a standalone
# build of kernels/ and bench/cuda runs instead.
# Environment: JOBS (16), SKIP_TESTS=1, SKIP_SANITIZER=1, SKIP_BENCH=1,
# BENCH_ARGS (extra banyan_bench_cuda flags), PROFILE=1 (ncu over a few decode steps).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
out="${OUT:-build/gpu-out}"
mkdir -p "$out"
jobs="${JOBS:-16}"
build=build-gpu
targets="banyan_kernels_cuda_tests banyan_bench_cuda"
full_targets="banyan_model_llama"  # the parity test loads the llama plugin
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$out/device.txt"

# --- PCRE2 for the top-level configure -------------------------------------------
source scripts/gpu-env.sh  # PCRE2 for the configure

# --- build ----------------------------------------------------------------------
configure_full() {
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBANYAN_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DBANYAN_TESTS=ON
}
# Only kernels/ and bench/cuda, for when the rest of the tree does not configure here.
configure_standalone() {
  local src=build-gpu-standalone-src
  build=build-gpu-standalone
  mkdir -p "$src"
  cat > "$src/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(BanyanKernels LANGUAGES C CXX CUDA)
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY \${PROJECT_BINARY_DIR}/bin)
set(BANYAN_TESTS ON)
find_package(CUDAToolkit REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(BLAS REQUIRED)
find_package(GTest REQUIRED)
include(GoogleTest)
enable_testing()
function(banyan_warnings target)
  target_compile_options(\${target} PRIVATE \$<\$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers>)
endfunction()
add_library(banyan_sdk INTERFACE)
add_library(Banyan::sdk ALIAS banyan_sdk)
target_include_directories(banyan_sdk INTERFACE $root/sdk/include)
add_subdirectory($root/kernels/cpu kernels_cpu)
target_include_directories(banyan_kernels_cpu PUBLIC $root)
add_subdirectory($root/kernels/cuda kernels_cuda)
CMAKE
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90
}
{
  if configure_full; then
    targets="$targets $full_targets"
  else
    echo "=== top-level configure failed: building kernels/ and bench/cuda standalone ==="
    configure_standalone || exit 1
  fi
  time cmake --build "$build" --target $targets -j "$jobs"
} > "$out/build.txt" 2>&1
rc=$?
tail -n 30 "$out/build.txt"
if [[ $rc -ne 0 ]]; then
  echo "BUILD FAILED (rc $rc)"
  exit 1
fi
bin="$build/bin"

# --- tests ----------------------------------------------------------------------
if [[ "${SKIP_TESTS:-0}" != 1 ]]; then
  "$bin/banyan_kernels_cuda_tests" > "$out/tests.txt" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|Failure|relative error|error:" "$out/tests.txt" | head -n 60
fi
if [[ "${SKIP_SANITIZER:-0}" != 1 ]] && command -v compute-sanitizer >/dev/null; then
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 3 \
    "$bin/banyan_kernels_cuda_tests" --gtest_filter='CudaAttention.*:CudaBackend.Graph*' \
    > "$out/sanitizer.txt" 2>&1 || status=1
  echo "compute-sanitizer: $(grep -E 'ERROR SUMMARY' "$out/sanitizer.txt" | tail -n1)"
fi

# --- benchmark ------------------------------------------------------------------
if [[ "${SKIP_BENCH:-0}" != 1 ]]; then
  # shellcheck disable=SC2086
  "$bin/banyan_bench_cuda" --out "$out/cuda_bench.json" ${BENCH_ARGS:-} 2>&1 | tee "$out/bench.txt" || status=1
fi
if [[ "${PROFILE:-0}" == 1 ]] && command -v ncu >/dev/null; then
  # Two decode layers at batch 1 (after warm-up), then one prefill attention kernel.
  timeout 180 ncu --section SpeedOfLight --launch-skip 700 --launch-count 30 --csv \
    "$bin/banyan_bench_cuda" --out /dev/null --batches 1 --prefill "" --steps 2 --reps 1 \
    > "$out/ncu_decode_b1.csv" 2>&1 || status=1
  timeout 180 ncu --kernel-name regex:prefill_kernel --launch-count 1 --section SpeedOfLight \
    --section Occupancy --section WarpStateStats --section ComputeWorkloadAnalysis \
    --section MemoryWorkloadAnalysis \
    "$bin/banyan_bench_cuda" --out /dev/null --batches 1 --steps 1 --reps 1 --prefill 2048 \
    > "$out/ncu_prefill.txt" 2>&1 || status=1
fi
exit $status
