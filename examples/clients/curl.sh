#!/usr/bin/env bash
# Every main route of a running Banyan server, with curl. Start the demo first:
#   build/bin/banyan serve --config configs/demo.yaml      (from the repository root)
#   examples/clients/curl.sh [BASE_URL]                    (default http://127.0.0.1:8000)
# Each request prints its answer; the script stops at the first failure (non-zero exit).
# With server.api_key set, export BANYAN_API_KEY.
set -euo pipefail
BASE=${1:-http://127.0.0.1:8000}
auth=()
[[ -n ${BANYAN_API_KEY:-} ]] && auth=(-H "Authorization: Bearer $BANYAN_API_KEY")
step() { printf '\n### %s\n' "$*"; }
call() { curl -sS --fail-with-body "${auth[@]}" -H 'Content-Type: application/json' "$@"; echo; }

step "GET /health: 200 while serving"
call "$BASE/health"
step "GET /version"
call "$BASE/version"
step "GET /v1/models: the base model and every adapter"
call "$BASE/v1/models"

step "POST /v1/completions (OpenAI), greedy"
call "$BASE/v1/completions" \
  -d '{"model": "demo", "prompt": "A fortune:", "max_tokens": 24, "temperature": 0}'
step "POST /v1/completions through the adapter \"love\", with logprobs"
call "$BASE/v1/completions" \
  -d '{"model": "love", "prompt": "Love is", "max_tokens": 8, "temperature": 0, "logprobs": 2}'
step "POST /v1/completions, streamed (server-sent events)"
call -N "$BASE/v1/completions" \
  -d '{"model": "demo", "prompt": "A fortune:", "max_tokens": 8, "stream": true, "stream_options": {"include_usage": true}}'
step "POST /v1/chat/completions"
call "$BASE/v1/chat/completions" \
  -d '{"model": "demo", "messages": [{"role": "user", "content": "Tell me something about love."}], "max_tokens": 32, "temperature": 0.5, "seed": 1}'
step "POST /v1/chat/completions, streamed"
call -N "$BASE/v1/chat/completions" \
  -d '{"model": "computers", "messages": [{"role": "user", "content": "Tell me something about computers."}], "max_tokens": 16, "stream": true}'

step "POST /generate (vLLM's api_server)"
call "$BASE/generate" -d '{"prompt": "The ", "max_tokens": 16, "n": 2, "seed": 7}'
step "POST /tokenize and /detokenize (vLLM)"
call "$BASE/tokenize" -d '{"prompt": "hello world"}'
call "$BASE/detokenize" -d '{"tokens": [1, 300, 400]}'

step "POST /generate (TGI), with an adapter and details"
call "$BASE/generate" \
  -d '{"inputs": "def ", "parameters": {"max_new_tokens": 16, "adapter_id": "python", "details": true}}'
step "POST /generate_stream (TGI)"
call -N "$BASE/generate_stream" -d '{"inputs": "The ", "parameters": {"max_new_tokens": 8}}'
step "GET /info (TGI)"
call "$BASE/info"

step "POST /v1/load_lora_adapter, use it, POST /v1/unload_lora_adapter"
# The path is resolved by the server (relative to its working directory) and must lie
# inside adapters.allowed_roots.
call "$BASE/v1/load_lora_adapter" \
  -d '{"lora_name": "py2", "lora_path": "models/demo/adapters/python"}'
call "$BASE/v1/completions" -d '{"model": "py2", "prompt": "def ", "max_tokens": 8, "temperature": 0}'
call "$BASE/v1/unload_lora_adapter" -d '{"lora_name": "py2"}'

step "GET /metrics (Prometheus), a few gauges"
curl -sS --fail "${auth[@]}" "$BASE/metrics" |
  grep -E '^banyan_(kv_cache_usage_ratio|num_requests_running|adapters_registered) '
