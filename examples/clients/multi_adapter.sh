#!/usr/bin/env bash
# One prompt through the base model and every adapter of a running Banyan server, all
# at once (they share the engine's batches), printed side by side, one line each.
#   examples/clients/multi_adapter.sh [BASE_URL] [PROMPT] [MAX_TOKENS]
# Needs curl and jq. Greedy (temperature 0), so each line is reproducible.
set -euo pipefail
BASE=${1:-http://127.0.0.1:8000}
PROMPT=${2:-A computer is}
MAX_TOKENS=${3:-32}
auth=()
[[ -n ${BANYAN_API_KEY:-} ]] && auth=(-H "Authorization: Bearer $BANYAN_API_KEY")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The base model comes first in /v1/models; adapters carry "parent".
listing=$(curl -sS --fail "${auth[@]}" "$BASE/v1/models")
mapfile -t models < <(jq -r '.data[].id' <<<"$listing")
pids=()
for i in "${!models[@]}"; do
  body=$(jq -n --arg m "${models[$i]}" --arg p "$PROMPT" --argjson n "$MAX_TOKENS" \
    '{model: $m, prompt: $p, max_tokens: $n, temperature: 0}')
  curl -sS --fail-with-body "${auth[@]}" -H 'Content-Type: application/json' \
    "$BASE/v1/completions" -d "$body" >"$tmp/$i.json" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

width=0
for m in "${models[@]}"; do ((${#m} > width)) && width=${#m}; done
printf '%-*s  %s\n' "$width" "model" "\"$PROMPT\" ->"
for i in "${!models[@]}"; do
  # Newlines and tabs of the completion are shown as \n and \t to keep one line each.
  text=$(jq -r '.choices[0].text | gsub("\n"; "\\n") | gsub("\t"; "\\t")' "$tmp/$i.json")
  printf '%-*s  %s\n' "$width" "${models[$i]}" "$text"
done
