#!/usr/bin/env bash
# Builds and runs the tokenizer tests and the encode benchmark on a machine without PCRE2
# headers (the GPU machine), next to Hugging Face tokenizers on the same documents.
# Expects: .cache/tokenizers/{llama3,qwen3,gemma3} (scripts/fetch-tokenizers.sh),
# .cache/bench/tokenizer_docs.jsonl (bench/tokenizer/make_bench_text.py) and libpcre2-dev
# unpacked in .deps/pcre2. Usage: bench/tokenizer/run_device.sh OUT_DIR
set -uo pipefail
out="${1:?usage: run_device.sh OUT_DIR}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
build=/tmp/banyan-tok-build
mkdir -p "$build" "$out"
jobs="$(nproc)"

echo "== machine"
lscpu | grep -E "Model name|^CPU\(s\)|MHz" || true
g++ --version | head -1
python3 -c "import tokenizers, transformers; print('tokenizers', tokenizers.__version__, 'transformers', transformers.__version__)"

echo "== build with CMake (-DBANYAN_PCRE2_ROOT=.deps/pcre2)"
cmake_ok=0
if cmake -S . -B "$build/cmake" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBANYAN_CUDA=OFF \
     -DBANYAN_PCRE2_ROOT=.deps/pcre2 >"$build/cmake.log" 2>&1 &&
   cmake --build "$build/cmake" --target banyan_tokenizer_tests -j"$jobs" >>"$build/cmake.log" 2>&1; then
  cmake_ok=1
  tests="$build/cmake/bin/banyan_tokenizer_tests"
  lib="$build/cmake/lib/libbanyan_tokenizer.a"
  echo "cmake build: ok"
else
  echo "cmake build failed (last lines below); building the tokenizer directly with g++"
  tail -15 "$build/cmake.log"
fi

flags=(-std=c++20 -O2 -DNDEBUG -I. -Isdk/include -I.deps/pcre2/usr/include)
if [[ $cmake_ok == 0 ]]; then
  mkdir -p "$build/obj"
  ls core/tokenizer/*.cpp | grep -v _test.cpp |
    xargs -P "$jobs" -I{} sh -c 'g++ '"${flags[*]}"' -c {} -o '"$build"'/obj/$(basename {} .cpp).o' || exit 1
  ar rcs "$build/libbanyan_tokenizer.a" "$build"/obj/*.o
  lib="$build/libbanyan_tokenizer.a"
  mkdir -p "$build/tobj"
  ls core/tokenizer/*_test.cpp |
    xargs -P "$jobs" -I{} sh -c 'g++ '"${flags[*]}"' -DBANYAN_SOURCE_DIR=\"'"$root"'\" -DBANYAN_BINARY_DIR=\"'"$build"'\" -c {} -o '"$build"'/tobj/$(basename {} .cpp).o' &&
    g++ -o "$build/banyan_tokenizer_tests" "$build"/tobj/*.o "$lib" .deps/pcre2/usr/lib/x86_64-linux-gnu/libpcre2-8.a \
      -lgtest -lgtest_main -pthread && tests="$build/banyan_tokenizer_tests"
fi
g++ "${flags[@]}" bench/tokenizer/tokenizer_bench.cpp -o "$build/tokenizer_bench" "$lib" \
  .deps/pcre2/usr/lib/x86_64-linux-gnu/libpcre2-8.a || exit 1

echo "== tests"
if [[ -n "${tests:-}" ]]; then
  BANYAN_SOURCE_DIR="$root" "$tests" --gtest_brief=1 2>&1 | tail -15 | tee "$out/tests.txt"
fi

echo "== benchmark (single thread, best of 5, twice each, interleaved)"
docs=.cache/bench/tokenizer_docs.jsonl
for round in 1 2; do
  taskset -c 2 "$build/tokenizer_bench" "$docs" .cache/tokenizers/llama3 .cache/tokenizers/qwen3 .cache/tokenizers/gemma3 \
    --repeat 5 | tee -a "$out/banyan_bench.jsonl"
  TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 taskset -c 2 python3 tools/make_tokenizer_goldens.py bench \
    --docs "$docs" --repeat 5 --json-out "$out/hf_bench_$round.json" | grep "^hf "
done
