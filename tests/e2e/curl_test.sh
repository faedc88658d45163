#!/usr/bin/env bash
# Every route with curl, as docs/http-api.md shows it: status codes, content types
# and the fields clients read.
#   curl_test.sh BASE_URL
set -uo pipefail
BASE=$1
fail=0
check() {  # check NAME WANT_STATUS REGEX... -- curl args  (every REGEX must match)
  local name=$1 want=$2; shift 2
  local res=()
  while [[ $1 != -- ]]; do res+=("$1"); shift; done
  shift
  local out status
  out=$(curl -s -w '\n%{http_code}' "$@" | tr '\0' '\n')
  status=${out##*$'\n'}
  out=${out%$'\n'*}
  if [[ $status != "$want" ]]; then echo "FAIL curl $name: status $status, wanted $want: ${out:0:300}"; fail=1; return; fi
  for re in "${res[@]}"; do
    if ! grep -Eq -- "$re" <<<"$out"; then echo "FAIL curl $name: body lacks /$re/: ${out:0:300}"; fail=1; return; fi
  done
  echo "ok   curl $name"
}
J=(-H 'Content-Type: application/json')
check health 200 -- "$BASE/health"
check models 200 '"object":"list"' '"id":"demo"' -- "$BASE/v1/models"
check completions 200 '"object":"text_completion"' '"finish_reason":"length"' -- "${J[@]}" "$BASE/v1/completions" \
  -d '{"model":"demo","prompt":"A fortune:","max_tokens":8,"temperature":0,"ignore_eos":true}'
check completions-logprobs 200 '"token_logprobs":\[' -- "${J[@]}" "$BASE/v1/completions" \
  -d '{"prompt":"A fortune:","max_tokens":4,"logprobs":2,"echo":true}'
check completions-stream 200 'data: \[DONE\]' -- -N "${J[@]}" "$BASE/v1/completions" \
  -d '{"prompt":"A fortune:","max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}'
check chat 200 '"object":"chat.completion"' '"role":"assistant"' -- "${J[@]}" "$BASE/v1/chat/completions" \
  -d '{"messages":[{"role":"user","content":"Tell me something about love."}],"max_tokens":16}'
check chat-stream 200 '"chat.completion.chunk"' 'data: \[DONE\]' -- -N "${J[@]}" "$BASE/v1/chat/completions" \
  -d '{"messages":[{"role":"user","content":"Tell me something about cats."}],"max_tokens":8,"stream":true}'
check vllm-generate 200 '^\{"text":\["The ' -- "${J[@]}" "$BASE/generate" -d '{"prompt":"The ","max_tokens":4}'
check vllm-generate-stream 200 '"text"' -- -N "${J[@]}" "$BASE/generate" -d '{"prompt":"The ","max_tokens":4,"stream":true}'
check tokenize 200 '"count":[0-9]+' '"tokens":\[1,' -- "${J[@]}" "$BASE/tokenize" -d '{"prompt":"hello world"}'
check detokenize 200 '"prompt":"hello world"' -- "${J[@]}" "$BASE/detokenize" \
  -d "{\"tokens\":$(curl -s "$BASE/tokenize" -d '{"prompt":"hello world","add_special_tokens":false}' | sed 's/.*"tokens":\(\[[^]]*\]\).*/\1/')}"
check tgi-generate 200 '"generated_text"' '"prefill"' '"finish_reason":"length"' -- "${J[@]}" "$BASE/generate" \
  -d '{"inputs":"The ","parameters":{"max_new_tokens":5,"details":true,"decoder_input_details":true}}'
check tgi-generate-stream 200 '^data: .*"token"' '"generated_text":"' -- -N "${J[@]}" "$BASE/generate_stream" \
  -d '{"inputs":"The ","parameters":{"max_new_tokens":5}}'
check tgi-info 200 '"model_id":"demo"' '"max_total_tokens"' -- "$BASE/info"
check metrics 200 'banyan_time_to_first_token_seconds_bucket' -- "$BASE/metrics"
check version 200 '"version"' -- "$BASE/version"
check bad-json 400 '"error":\{"code"' -- "${J[@]}" "$BASE/v1/completions" -d '{"prompt":'
check unknown-model 404 'model_not_found' -- "${J[@]}" "$BASE/v1/completions" -d '{"model":"nope","prompt":"x"}'
check unknown-route 404 '"error"' -- "$BASE/v2/nothing"
check too-long 400 'context_length_exceeded' -- "${J[@]}" "$BASE/v1/completions" -d '{"prompt":"x","max_tokens":100000}'
check unload-unknown 404 'adapter_not_found' -- "${J[@]}" "$BASE/v1/unload_lora_adapter" -d '{"lora_name":"nope"}'
check load-outside 403 'path_not_allowed' -- "${J[@]}" "$BASE/v1/load_lora_adapter" -d '{"lora_name":"x","lora_path":"/etc"}'
exit $fail
