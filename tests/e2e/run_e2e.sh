#!/usr/bin/env bash
# End-to-end tests of `banyan serve` against the demo model with real clients:
# curl, the official openai npm package, @huggingface/inference (v4 over the OpenAI
# routes, v2 over TGI's), a 1,000-stream load and a disconnect storm, then a
# graceful drain on SIGTERM (exit 0).
#   run_e2e.sh BANYAN_BINARY SOURCE_DIR WORK_DIR
set -uo pipefail
BANYAN=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
if [[ ! -f $SRC/models/demo/config.json ]]; then
  echo "SKIP: models/demo is absent (tools/train_demo.py makes it); the e2e tests need the real model"
  exit 77
fi
for tool in node npm curl; do
  command -v $tool >/dev/null || { echo "FAIL: $tool is not installed"; exit 1; }
done
mkdir -p "$WORK"
cp "$SRC"/tests/e2e/package.json "$SRC"/tests/e2e/*.mjs "$SRC"/tests/e2e/curl_test.sh "$WORK"/
(cd "$WORK" && npm install --no-audit --no-fund --loglevel=error >npm.log 2>&1) ||
  { echo "FAIL: npm install (see $WORK/npm.log)"; cat "$WORK/npm.log"; exit 1; }

PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
BASE=http://127.0.0.1:$PORT
LOG=$WORK/server.log
# Relative paths of configs/demo.yaml (model, adapters, allowed roots) are from $SRC.
(cd "$SRC" && exec "$BANYAN" serve --config configs/demo.yaml --port "$PORT" --io-threads 4) >"$LOG" 2>&1 &
PID=$!
cleanup() { kill -KILL "$PID" 2>/dev/null; }
trap cleanup EXIT
for _ in $(seq 1 600); do
  curl -sf "$BASE/health" >/dev/null && break
  kill -0 "$PID" 2>/dev/null || { echo "FAIL: the server exited at start"; cat "$LOG"; exit 1; }
  sleep 0.2
done
curl -sf "$BASE/health" >/dev/null || { echo "FAIL: the server did not come up"; tail -50 "$LOG"; exit 1; }

fail=0
bash "$WORK/curl_test.sh" "$BASE" || fail=1
(cd "$WORK" && node e2e.mjs "$BASE") || fail=1
(cd "$WORK" && node load.mjs "$BASE") || fail=1

# Graceful drain: a running stream finishes, the server exits 0.
curl -sN "$BASE/v1/completions" -d '{"prompt":"The","max_tokens":64,"ignore_eos":true,"stream":true}' \
  >"$WORK/drain.txt" &
CURL=$!
sleep 0.3
kill -TERM "$PID"
wait "$CURL"
wait "$PID"
rc=$?
trap - EXIT
if [[ $rc -ne 0 ]]; then echo "FAIL drain: exit code $rc"; fail=1; else echo "ok   drain: exit 0"; fi
if [[ $(grep -c '^data: {' "$WORK/drain.txt") -ge 64 && $(tail -c 20 "$WORK/drain.txt") == *"[DONE]"* ]]; then
  echo "ok   drain: the running stream finished"
else
  echo "FAIL drain: the running stream was cut"; fail=1
fi
[[ $fail -eq 0 ]] || { echo "--- server log (tail) ---"; tail -40 "$LOG"; }
exit $fail
