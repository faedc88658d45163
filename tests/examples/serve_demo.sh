# Sourced by tests that need a running demo server (as tests/e2e/run_e2e.sh starts it):
#   source serve_demo.sh; start_demo_server BANYAN SOURCE_DIR LOG_FILE [serve flags...]
# sets BASE (http://127.0.0.1:PORT on a free port) and SERVER_PID, waits for /health,
# and stops the server on exit. Returns 1 (with the log) when it does not come up.
free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})' 2>/dev/null ||
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
start_demo_server() {
  local banyan=$1 src=$2 log=$3
  shift 3
  local port
  port=$(free_port)
  BASE=http://127.0.0.1:$port
  # Relative paths of configs/demo.yaml (model, adapters, allowed roots) are from src.
  (cd "$src" && exec "$banyan" serve --config configs/demo.yaml --port "$port" "$@") >"$log" 2>&1 &
  SERVER_PID=$!
  trap 'kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null' EXIT
  for _ in $(seq 1 600); do
    curl -sf "$BASE/health" >/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "FAIL: the server exited at start"; cat "$log"; return 1; }
    sleep 0.2
  done
  echo "FAIL: the server did not come up"; tail -50 "$log"; return 1
}
