#!/usr/bin/env bash
# Builds Banyan with CUDA (Release, sm_90) on the GPU machine and checks the multi-LoRA
# CUDA path and the engine on --device cuda, in one go; everything goes to $OUT
# (default build/gpu-out; at most 8 files, what the device tool brings back):
#   build.txt               the GPU and the build log
#   tests.txt               the CUDA backend tests (LoRA vs the CPU kernels among them),
#                           compute-sanitizer over the LoRA tests
#   engine.txt              the engine suite with BANYAN_TEST_DEVICE=cuda (bf16 rule),
#                           adapters through the engine on CUDA vs peft
#   lora_bench.json/.txt    banyan_bench_lora_gpu (multi-LoRA decode vs the base model)
#   serve.txt               `banyan serve --device cuda` with the demo adapters, curl
#                           answers beside the same requests on the CPU, server logs
#   ncu.txt                 (PROFILE=1) Nsight Compute over a few LoRA kernels
# The top-level configure needs PCRE2 headers, which the GPU machine lacks: carry .deps
# holding `apt-get download libpcre2-dev libpcre2-8-0` (the .deb files).
# Environment: JOBS (16), SKIP_TESTS=1, SKIP_SANITIZER=1, SKIP_ENGINE=1 (the engine
# suite and the adapters through the engine), SKIP_ENGINE_SUITE=1 (only the latter),
# SKIP_BENCH=1, SKIP_SERVE=1, BENCH_ARGS (extra banyan_bench_lora_gpu flags),
# BUDGET (seconds for the whole script, default 460: each step's timeout is cut to
# what is left). The kernels' tests and the bench are built first, the rest after
# (a failure there skips only the steps that need it). Order: build, kernel tests,
# bench, compute-sanitizer, engine tests, serve.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-build/gpu-out}"
mkdir -p "$out"
jobs="${JOBS:-16}"
build=build-gpu
status=0
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$out/build.txt"

source scripts/gpu-env.sh  # PCRE2 for the configure

# --- build ----------------------------------------------------------------------
budget="${BUDGET:-460}"
left() {  # seconds for a step: its own limit, cut to what the budget leaves (>= 5)
  local l=$(( budget - ($(date +%s) - start) - 5 ))
  (( l > $1 )) && l=$1
  (( l < 5 )) && l=5
  echo "$l"
}
# Every in-tree plugin (plugins/<kind>/<name>: target banyan_<kind>_<name>): the engine
# tests load the model and decoding plugins.
plugins=$(for d in plugins/*/*/; do [[ -f $d/CMakeLists.txt ]] && d=${d%/} && echo "banyan_$(basename "$(dirname "$d")")_$(basename "$d")"; done)
engine_targets="banyan_adapters_tests $plugins"
[[ "${SKIP_ENGINE_SUITE:-0}" != 1 ]] && engine_targets="banyan_engine_tests $engine_targets"
{
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBANYAN_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DBANYAN_TESTS=ON &&
  time cmake --build "$build" --target banyan_kernels_cuda_tests banyan_bench_lora_gpu -j "$jobs"
} >> "$out/build.txt" 2>&1
rc=$?
tail -n 3 "$out/build.txt"
if [[ $rc -ne 0 ]]; then
  grep -E "error|FAILED" "$out/build.txt" | head -n 30
  echo "BUILD FAILED (rc $rc)"
  exit 1
fi
stamp "built the kernel tests and the bench"
if [[ "${SKIP_ENGINE:-0}" != 1 ]]; then
  # shellcheck disable=SC2086
  if ! timeout "$(left 200)" cmake --build "$build" --target $engine_targets -j "$jobs" >> "$out/build.txt" 2>&1; then
    grep -E "error|FAILED" "$out/build.txt" | tail -n 10
    echo "the engine / adapters tests did not build: engine tests skipped"
    SKIP_ENGINE=1
    status=1
  fi
fi
# The CLI (server) apart: the serve test is skipped when it does not build.
if [[ "${SKIP_SERVE:-0}" != 1 ]] && ! cmake --build "$build" --target banyan -j "$jobs" >> "$out/build.txt" 2>&1; then
  grep -E "error|FAILED" "$out/build.txt" | tail -n 10
  echo "the banyan CLI did not build: serve test skipped"
  SKIP_SERVE=1
fi
stamp "built"
bin="$build/bin"

# --- kernel tests -----------------------------------------------------------------
if [[ "${SKIP_TESTS:-0}" != 1 ]]; then
  timeout "$(left 120)" "$bin/banyan_kernels_cuda_tests" > "$out/tests.txt" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|Failure|off|error" "$out/tests.txt" | head -n 40
  stamp "kernel tests"
fi

# --- multi-LoRA benchmark ---------------------------------------------------------
if [[ "${SKIP_BENCH:-0}" != 1 ]]; then
  # shellcheck disable=SC2086
  timeout "$(left 300)" "$bin/banyan_bench_lora_gpu" --out "$out/lora_bench.json" ${BENCH_ARGS:-} \
    > "$out/lora_bench.txt" 2>&1 || status=1
  tail -n 40 "$out/lora_bench.txt"
  stamp "bench"
fi

# --- compute-sanitizer over the LoRA tests ----------------------------------------
if [[ "${SKIP_TESTS:-0}" != 1 && "${SKIP_SANITIZER:-0}" != 1 ]] && command -v compute-sanitizer >/dev/null; then
  timeout "$(left 150)" compute-sanitizer --tool memcheck --error-exitcode 3 \
    "$bin/banyan_kernels_cuda_tests" --gtest_filter='CudaLora.*' >> "$out/tests.txt" 2>&1 || status=1
  echo "compute-sanitizer (LoRA): $(grep -E 'ERROR SUMMARY' "$out/tests.txt" | tail -n1)"
  stamp "sanitizer"
fi

# --- engine suite on the GPU ------------------------------------------------------
if [[ "${SKIP_ENGINE:-0}" != 1 ]]; then
  if [[ "${SKIP_ENGINE_SUITE:-0}" != 1 ]]; then
    BANYAN_TEST_DEVICE=cuda timeout "$(left 240)" "$bin/banyan_engine_tests" > "$out/engine.txt" 2>&1 || status=1
    grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|bf16|Failure" "$out/engine.txt" | head -n 40
  fi
  # Adapters through the engine on CUDA against peft (the CUDA LoRA kernels end to end).
  timeout "$(left 180)" "$bin/banyan_adapters_tests" --gtest_filter='LoraCudaEngine.*' >> "$out/engine.txt" 2>&1 || status=1
  grep -E "PEFT|LoraCudaEngine|Failure|^\[  (PASSED|FAILED)" "$out/engine.txt" | tail -n 16
  stamp "engine tests"
fi

# --- serve smoke test -------------------------------------------------------------
serve_once() {  # device port
  local device=$1 port=$2 pid
  "$bin/banyan" serve --config configs/demo.yaml --device "$device" --port "$port" \
    > "$build/serve_$device.log" 2>&1 &
  pid=$!
  for _ in $(seq 120); do
    curl -sf "localhost:$port/health" >/dev/null 2>&1 && break
    sleep 0.5
  done
  echo "== $device: GET /v1/models"
  curl -s "localhost:$port/v1/models"
  echo
  for model in demo python computers love; do
    echo "== $device: $model"
    curl -s "localhost:$port/v1/completions" -H 'Content-Type: application/json' \
      -d "{\"model\": \"$model\", \"prompt\": \"A computer is\", \"max_tokens\": 40, \"temperature\": 0}"
    echo
  done
  echo "== $device: chat"
  curl -s "localhost:$port/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model": "love", "messages": [{"role": "user", "content": "Tell me something about love."}], "max_tokens": 30, "temperature": 0}'
  echo
  kill "$pid" 2>/dev/null
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
if [[ "${SKIP_SERVE:-0}" != 1 ]]; then
  {
    serve_once cuda 8011
    serve_once cpu 8012
  } > "$out/serve.txt" 2>&1
  for d in cuda cpu; do echo "## $d server log"; cat "$build/serve_$d.log"; done >> "$out/serve.txt"
  grep -c '"text"' "$out/serve.txt" | xargs echo "completions answered (cuda + cpu, of 8):"
  grep -E "KV cache|engine ready" "$build/serve_cuda.log" | head -n 3
  python3 - "$out/serve.txt" <<'PY' || status=1
import json, sys
answers = {}
device = None
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("== "):
        device, name = line[3:].split(": ", 1)
        continue
    if line.startswith("{") and device:
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if "choices" in j:
            c = j["choices"][0]
            answers[(device, name)] = c.get("text") or c.get("message", {}).get("content")
for (device, name), text in sorted(answers.items()):
    if device == "cuda":
        same = answers.get(("cpu", name)) == text
        print(f"{name:10s} cuda==cpu: {same}  {text!r}"[:160])
if not any(d == "cuda" for d, _ in answers):
    print("no answer from the cuda server")
    sys.exit(1)
PY
  stamp "serve"
fi
# --- profile ----------------------------------------------------------------------
if [[ "${PROFILE:-0}" == 1 ]] && command -v ncu >/dev/null; then
  # The LoRA kernels of a few modules of a decode step (b64, inside the graph), with
  # 1 and with 64 adapters; the bench is stopped once they are profiled.
  for n in 1 64; do
    echo "### $n adapters"
    timeout "$(left 100)" ncu --kernel-name regex:'shrink|expand|merge' --launch-skip 1400 --launch-count 12 --kill on \
      --section SpeedOfLight --section Occupancy --section LaunchStats \
      "$bin/banyan_bench_lora_gpu" --out /dev/null --adapters $n --big-batch 0 --prefill 0 --steps 4 --reps 1 --ablate 0 2>&1
  done > "$out/ncu.txt"
  grep -E "^###|shrink_kernel|expand_kernel|merge_kernel|Duration|DRAM Throughput|Achieved Occupancy" "$out/ncu.txt" | head -n 80
  stamp "profile"
fi
exit $status
