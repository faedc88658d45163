#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite:
#   1. a Release build (with the CUDA code compiled when nvcc is present) and every
#      test registered with CTest (GPU tests skip, saying so, without a GPU);
#   2. a Debug build under AddressSanitizer + UndefinedBehaviorSanitizer running the
#      unit tests.
# Usage: scripts/test.sh [--quick]   (--quick: skip the sanitizer build)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1

scripts/install-deps.sh
scripts/fetch-test-data.sh

jobs=$(nproc)
cuda_flag=()
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

echo "== Release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_flag[@]}"
cmake --build build -j"$jobs"
echo "== Release tests"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900

if (( ! quick )); then
  echo "== Debug + ASan/UBSan build (unit tests)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBANYAN_SANITIZE=ON -DBANYAN_CUDA=OFF
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 1800 -L unit
fi
echo "== all tests passed"
