#!/usr/bin/env bash
# Makes the parity fixtures (tests/fixtures/models/) and the demo model (models/demo/) on a CUDA
# machine with torch, transformers 5, peft, tokenizers and safetensors, then packs them for the trip back:
#   $OUT/log.txt, $OUT/fixtures.tar.gz, $OUT/demo.tar.gz   (OUT defaults to build/gpu-out)
# Needs the corpus from scripts/gather-corpus.sh in .cache/corpus (carry it to the GPU machine).
# Environment: SKIP_FIXTURES=1 / SKIP_DEMO=1 skip a tool; FIXTURE_ARGS / DEMO_ARGS pass extra flags,
# e.g. FIXTURE_ARGS="--families llama,qwen3" DEMO_ARGS="--stages samples".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-build/gpu-out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=true
corpus=.cache/corpus
if [[ ! -d $corpus/fortunes || ! -d $corpus/python ]]; then
  echo "no $corpus: run scripts/gather-corpus.sh and carry .cache/corpus" | tee "$out/log.txt"
  exit 1
fi
(
  status=0
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  if [[ "${SKIP_FIXTURES:-0}" != 1 ]]; then
    # shellcheck disable=SC2086
    python3 tools/make_fixtures.py --corpus "$corpus" --out tests/fixtures/models ${FIXTURE_ARGS:-} || status=1
  fi
  if [[ "${SKIP_DEMO:-0}" != 1 ]]; then
    # shellcheck disable=SC2086
    python3 tools/train_demo.py --corpus "$corpus" --out models/demo ${DEMO_ARGS:-} || status=1
  fi
  exit $status
) 2>&1 | tee "$out/log.txt"
rc=${PIPESTATUS[0]}
[[ -d tests/fixtures/models ]] && tar -czf "$out/fixtures.tar.gz" tests/fixtures/models
[[ -d models/demo ]] && tar -czf "$out/demo.tar.gz" models/demo
ls -l "$out"
exit "$rc"
