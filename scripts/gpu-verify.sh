#!/usr/bin/env bash
# One pass over everything that runs on the GPU, for a tree where several CUDA parts
# changed at once: builds the whole tree with CUDA (Release, sm_90), then runs
#   kernels.txt   the CUDA backend suite (ops, GEMMs, attention, sampling, LoRA, parity)
#   runtime.txt   the runtime suite on CUDA (decode graphs among it)
#   engine.txt    the engine suite with BANYAN_TEST_DEVICE=cuda (device sampling, graphs)
#   adapters.txt  the adapter suite (paged pool; adapters through the engine on CUDA vs peft)
#   quant.txt     the quantizer suite (CUDA kernels vs the plugins' weights)
#   cuda_bench.json  (BENCH=1) banyan_bench_cuda's decode and prefill figures of this tree
#                 (BENCH_ARGS: more arguments, e.g. "--fuse-ab")
#   serve.txt     `banyan serve --device cuda` with the demo adapters: greedy and sampled
#                 completions per adapter over curl, /metrics
#   quant_decode.json  (QUANT_DECODE=1) banyan_bench_quant's whole-model decode per
#                 quantizer on a random Llama-3-8B-shaped checkpoint (QUANT_METHODS)
# into $OUT (default build/gpu-out); SUITES (e.g. "engine adapters") runs only those;
# EXTRA_TARGETS are built too (e.g. banyan_bench_lora_gpu).
# Every step's time is cut to what BUDGET (seconds, default 540) leaves. The top-level configure needs PCRE2 headers, which the GPU
# machine lacks: carry .deps holding `apt-get download libpcre2-dev libpcre2-8-0`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-build/gpu-out}"
mkdir -p "$out"
build=build-gpu
status=0
budget="${BUDGET:-540}"
left() { echo $(( budget - SECONDS )); }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/build.txt"
source scripts/gpu-env.sh  # PCRE2 for the configure
# The server, every in-tree plugin (target banyan_<kind>_<name>) and the suites below.
plugins=$(for d in plugins/*/*/; do [[ -f $d/CMakeLists.txt ]] && d=${d%/} && echo "banyan_$(basename "$(dirname "$d")")_$(basename "$d")"; done)
suites="${SUITES:-kernels_cuda runtime engine adapters quant}"  # SUITES: a subset of these
targets="${BENCH:+banyan_bench_cuda }${QUANT_DECODE:+banyan_bench_quant }banyan $plugins ${EXTRA_TARGETS:-}"
for x in $suites; do targets="$targets banyan_${x}_tests"; done
{
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBANYAN_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DBANYAN_TESTS=ON &&
    time cmake --build "$build" -j "${JOBS:-16}" --target $targets -- -k 0
} >> "$out/build.txt" 2>&1 || { status=1; grep -E "error|FAILED" "$out/build.txt" | head -n 30; }
echo "built at ${SECONDS}s"
bin="$build/bin"
export BANYAN_TEST_DEVICE=cuda

# suite FILE BINARY [gtest args]: runs it within what is left, prints its summary.
suite() {
  local file=$1 exe=$2
  shift 2
  [[ " $targets " == *" $exe "* ]] || return 0
  if [[ ! -x $bin/$exe ]]; then echo "$exe: not built"; status=1; return; fi
  local t=$(( $(left) - 60 ))
  (( t < 10 )) && { echo "$exe: no time left"; status=1; return; }
  timeout "$t" "$bin/$exe" "$@" > "$out/$file" 2>&1 || status=1
  echo "== $exe: $(grep -E '^\[==========\] .* ran' "$out/$file" | tail -n1)"
  grep -E "^\[  (PASSED|FAILED)  \]|identical|graphs \]" "$out/$file" | head -n 20
}
suite kernels.txt banyan_kernels_cuda_tests
suite runtime.txt banyan_runtime_tests
suite engine.txt banyan_engine_tests
suite adapters.txt banyan_adapters_tests
suite quant.txt banyan_quant_tests

# The demo deployment on the GPU, asked over HTTP like the README does.
if [[ -x $bin/banyan ]] && (( $(left) > 40 )); then
  {
    "$bin/banyan" serve --config configs/demo.yaml --device cuda --port 8011 \
      --gpu-memory-utilization 0.5 > /tmp/serve_log.txt 2>&1 &
    pid=$!
    for _ in $(seq 60); do curl -sf http://127.0.0.1:8011/health >/dev/null && break; sleep 1; done
    for model in demo python computers love; do
      echo "--- $model, greedy"
      curl -s http://127.0.0.1:8011/v1/completions -H 'Content-Type: application/json' \
        -d "{\"model\": \"$model\", \"prompt\": \"The\", \"max_tokens\": 24, \"temperature\": 0}"
      echo
      echo "--- $model, sampled (top_p 0.9, seed 7, logprobs 2)"
      curl -s http://127.0.0.1:8011/v1/completions -H 'Content-Type: application/json' \
        -d "{\"model\": \"$model\", \"prompt\": \"The\", \"max_tokens\": 24, \"temperature\": 0.8, \"top_p\": 0.9, \"seed\": 7, \"logprobs\": 2}"
      echo
    done
    echo "--- metrics"
    curl -s http://127.0.0.1:8011/metrics | grep -E "^banyan_(adapter|requests|generation)" | head -n 30
    kill "$pid"; wait "$pid"
  } > "$out/serve.txt" 2>&1
  grep -c '"text"' "$out/serve.txt" | sed 's/^/completions answered: /'
  tail -n 20 /tmp/serve_log.txt >> "$out/serve.txt"
fi
if [[ -n ${BENCH:-} && -x $bin/banyan_bench_cuda ]] && (( $(left) > 90 )); then
  timeout $(( $(left) - 10 )) "$bin/banyan_bench_cuda" --out "$out/cuda_bench.json" ${BENCH_ARGS:-} 2>&1 | tail -n 20 || status=1
fi
if [[ -n ${QUANT_DECODE:-} && -x $bin/banyan_bench_quant ]] && (( $(left) > 120 )); then
  timeout $(( $(left) - 10 )) "$bin/banyan_bench_quant" --random-llama 8b --device cuda \
    --methods "${QUANT_METHODS:-none,int8,int4,nf4,fp8_channel}" --group-size 128 \
    --decode-batches 1,64 --new-tokens 32 --out "$out/quant_decode.json" 2>&1 | tail -n 10 || status=1
fi
echo "done at ${SECONDS}s, status $status"
exit $status
