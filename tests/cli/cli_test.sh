#!/usr/bin/env bash
# Checks the CLI contracts of issue "Foundation": config check, plugins list, help.
set -uo pipefail
BANYAN=$1
SRC=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
expect() {  # expect NAME WANT_RC WANT_REGEX -- command...
  local name=$1 want_rc=$2 want=$3; shift 4
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [[ $rc -ne $want_rc ]]; then echo "FAIL $name: exit $rc, wanted $want_rc"; echo "$out"; fail=1; return; fi
  if ! grep -Eq -- "$want" <<<"$out"; then echo "FAIL $name: output lacks /$want/"; echo "$out"; fail=1; return; fi
  echo "ok   $name"
}

cat >"$tmp/bad.yaml" <<'Y'
model:
  path: m
engine:
  max_num_seqs: lots
  max_num_seq: 3
server: {port: 99999}
Y
expect config-check-bad 2 'engine\.max_num_seqs: expected an integer, got "lots" \(.*bad\.yaml:4\)' -- "$BANYAN" config check "$tmp/bad.yaml"
expect config-check-didyoumean 2 'engine\.max_num_seq: unknown key; did you mean "engine\.max_num_seqs"\? \(.*bad\.yaml:5\)' -- "$BANYAN" config check "$tmp/bad.yaml"
expect config-check-range 2 'server\.port: 99999 is out of range' -- "$BANYAN" config check "$tmp/bad.yaml"
expect config-check-count 2 'bad\.yaml: 3 errors' -- "$BANYAN" config check "$tmp/bad.yaml"
expect config-check-demo 0 'ok' -- "$BANYAN" config check "$SRC/configs/demo.yaml"
expect config-check-missing 2 'no such file' -- "$BANYAN" config check "$tmp/none.yaml"
printf 'engine: [unclosed\n' >"$tmp/broken.yaml"
expect config-check-yaml 2 'not valid YAML' -- "$BANYAN" config check "$tmp/broken.yaml"
expect flag-type 2 'engine\.max_num_seqs: expected an integer, got "abc" \(--max-num-seqs\)' -- "$BANYAN" serve --model m --max-num-seqs abc
expect version 0 '^banyan [0-9]+\.[0-9]+\.[0-9]+ \(plugin ABI 1\.[0-9]+\)' -- "$BANYAN" version
expect plugins-json 0 '^\[' -- "$BANYAN" plugins list --json
expect plugin-path-missing 1 'not a directory' -- "$BANYAN" plugins list --plugin-path "$tmp/nope"
for sub in serve run-batch generate tokenize chat-template bench version; do
  expect "help-$sub" 0 'Usage' -- "$BANYAN" "$sub" --help
done
expect help-plugins-list 0 'Usage' -- "$BANYAN" plugins list --help
expect help-config-check 0 'Usage' -- "$BANYAN" config check --help
expect unknown-subcommand 2 'require|Usage|not expected|Extras' -- "$BANYAN" frobnicate

# Every real plugin of the build is listed, with the JSON fields of the contract.
if command -v python3 >/dev/null; then
  "$BANYAN" plugins list --json | python3 -c '
import json, sys
arr = json.load(sys.stdin)
for p in arr:
    assert set(p) == {"name", "kind", "version", "abi", "path"}, p
    assert p["kind"] in ("model", "adapter", "quantizer", "decoding"), p
print("ok   plugins-json-fields (%d plugins)" % len(arr))' || fail=1
fi
exit $fail
