#!/usr/bin/env bash
# The client examples against the real demo server, and the offline example:
#  - examples/clients/curl.sh: every main route answers (it stops at the first failure);
#  - examples/clients/openai_client.mjs with the openai npm package (installed here):
#    models, completion, chat, both streamed, each answer non-empty;
#  - examples/clients/multi_adapter.sh: one line per model (base + every adapter),
#    each non-empty, the adapters' texts differing from the base and each other;
#  - build/bin/banyan_offline_example (banyan::LLM): base and each adapter answer,
#    the adapters differently.
#   clients_test.sh BANYAN SOURCE_DIR WORK_DIR OFFLINE_EXAMPLE
set -uo pipefail
BANYAN=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
OFFLINE=$(realpath "$4")
if [[ ! -f $SRC/models/demo/config.json ]]; then
  echo "SKIP: models/demo is absent; the client examples need the demo model"; exit 77
fi
for tool in node npm curl jq; do
  command -v $tool >/dev/null || { echo "FAIL: $tool is not installed (scripts/install-deps.sh)"; exit 1; }
done
mkdir -p "$WORK"
WORK=$(realpath "$WORK")
fail=0

# The offline example first (no server, no network).
if out=$(cd "$SRC" && "$OFFLINE" configs/demo.yaml 2>"$WORK/offline.log"); then
  declare -A seen
  ok=1
  for m in base python computers love; do
    line=$(grep -F "[$m] A computer is -> " <<<"$out" | head -1)
    text=${line#*-> }
    if [[ -z $line || -z ${text// /} ]]; then echo "FAIL offline: no completion for $m"; ok=0; fi
    seen[$text]=1
  done
  [[ ${#seen[@]} -eq 4 ]] || { echo "FAIL offline: the adapters do not change the text"; ok=0; }
  [[ $(grep -c '^\[base, sampled\] ' <<<"$out") -eq 2 ]] || { echo "FAIL offline: n=2 sampling"; ok=0; }
  if ((ok)); then echo "ok   offline example: base and 3 adapters, 4 different texts; n=2 sampling"
  else echo "$out"; fail=1; fi
else
  echo "FAIL offline example exited non-zero"; cat "$WORK/offline.log"; fail=1
fi

cp "$SRC"/examples/clients/package.json "$SRC"/examples/clients/openai_client.mjs "$WORK"/
(cd "$WORK" && npm install --no-audit --no-fund --loglevel=error >npm.log 2>&1) ||
  { echo "FAIL: npm install (see $WORK/npm.log)"; cat "$WORK/npm.log"; exit 1; }

source "$SRC/tests/examples/serve_demo.sh"
start_demo_server "$BANYAN" "$SRC" "$WORK/server.log" || exit 1

# curl.sh runs from the source dir: the adapter path it loads is relative to the
# server's working directory, which is also the source dir.
if (cd "$SRC" && bash examples/clients/curl.sh "$BASE") >"$WORK/curl.txt" 2>&1; then
  n=$(grep -c '^### ' "$WORK/curl.txt")
  echo "ok   curl.sh: $n routes answered"
else
  echo "FAIL curl.sh:"; tail -20 "$WORK/curl.txt"; fail=1
fi

if (cd "$WORK" && node openai_client.mjs "$BASE") >"$WORK/openai.txt" 2>&1; then
  echo "ok   openai_client.mjs: $(grep -c ': "' "$WORK/openai.txt") non-empty answers"
else
  echo "FAIL openai_client.mjs:"; cat "$WORK/openai.txt"; fail=1
fi

if out=$(bash "$SRC/examples/clients/multi_adapter.sh" "$BASE" "A computer is" 24 2>&1); then
  body=$(tail -n +2 <<<"$out")
  models=$(cut -d' ' -f1 <<<"$body" | sort | tr '\n' ' ')
  texts=$(sed -E 's/^[^ ]+ +//' <<<"$body")
  if [[ $models != "computers demo love python " ]]; then
    echo "FAIL multi_adapter.sh: models '$models'"; echo "$out"; fail=1
  elif grep -qx '' <<<"$texts" || [[ $(sort -u <<<"$texts" | wc -l) -ne 4 ]]; then
    echo "FAIL multi_adapter.sh: empty or equal texts"; echo "$out"; fail=1
  else
    echo "ok   multi_adapter.sh: base + 3 adapters, 4 different texts"
  fi
else
  echo "FAIL multi_adapter.sh:"; echo "$out"; fail=1
fi
[[ $fail -eq 0 ]] || { echo "--- server log (tail) ---"; tail -30 "$WORK/server.log"; }
exit $fail
