#!/usr/bin/env bash
# Installs Banyan into a temporary prefix, builds examples/typical_decoding against it
# with find_package(Banyan) alone, then:
#  - the typical filter through the engine's decoding path against Hugging Face's
#    TypicalLogitsWarper written in the test (Decoding.OutOfTreeTypical*, which must
#    run, not skip), typical_p taken from the strategy options;
#  - the installed `banyan generate` with YAML decoding.strategy: typical prints text;
#  - refusals: typical_p out of range, a misspelt option, the plugin not on the path.
#   typical_decoding_test.sh CMAKE BUILD_DIR SOURCE_DIR
set -euo pipefail
CMAKE=$1
BUILD=$(realpath "$2")
SRC=$(realpath "$3")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$CMAKE" --install "$BUILD" --prefix "$work/prefix" >/dev/null
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
"$CMAKE" -S "$SRC/examples/typical_decoding" -B "$work/typical" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
"$CMAKE" --build "$work/typical" -j2 >/dev/null
PLUGINS=$work/typical/plugins
test -f "$PLUGINS/decoding/typical/plugin.yaml"
BANYAN=$work/prefix/bin/banyan
"$BANYAN" plugins list --json --plugin-path "$PLUGINS" | grep -q '"name": "typical"'
echo "ok   typical: built against the installed SDK, listed from --plugin-path"

out=$(BANYAN_TEST_PLUGIN_PATH="$PLUGINS" "$BUILD/bin/banyan_engine_tests" \
        --gtest_filter='Decoding.OutOfTreeTypical*' 2>&1) || { echo "$out"; exit 1; }
if grep -q SKIPPED <<<"$out" || ! grep -q "\[  PASSED  \] 1 test" <<<"$out"; then
  echo "$out"; echo "FAIL: the typical filter test did not run and pass"; exit 1
fi
echo "ok   typical: draws cover exactly Hugging Face's typical set, with its probabilities"

if [[ ! -f $SRC/models/demo/config.json ]]; then
  echo "SKIP: models/demo is absent; the generate checks need it"; exit 0
fi
cd "$SRC"
cat >"$work/typical.yaml" <<'YAML'
decoding:
  strategy: typical
  options: {typical_p: 0.5}
YAML
text=$("$BANYAN" generate --model models/demo --plugin-path "$PLUGINS" --config "$work/typical.yaml" \
         --temperature 1 --seed 3 --max-tokens 16 --prompt "Love is" 2>"$work/log.txt") ||
  { cat "$work/log.txt"; echo "FAIL: generate with the typical strategy"; exit 1; }
if [[ ${text#Love is} == "" || $text != "Love is"* ]]; then
  echo "FAIL: no continuation: '$text'"; exit 1
fi
grep -q "typical sampling with typical_p 0.5" "$work/log.txt" ||
  { cat "$work/log.txt"; echo "FAIL: the plugin did not get typical_p from decoding.options"; exit 1; }
echo "ok   typical: banyan generate with decoding.strategy typical: ${text//$'\n'/ }"

refused() {  # refused NAME EXPECTED_MESSAGE YAML [EXTRA ARGS]
  local name=$1 want=$2 yaml=$3; shift 3
  printf '%s\n' "$yaml" >"$work/bad.yaml"
  local err
  if err=$("$BANYAN" generate --model models/demo --config "$work/bad.yaml" --prompt x "$@" 2>&1); then
    echo "FAIL $name: accepted"; exit 1
  fi
  grep -qF -- "$want" <<<"$err" || { echo "$err"; echo "FAIL $name: lacks '$want'"; exit 1; }
  echo "ok   typical refuses: $name"
}
refused "typical_p out of range" '"typical_p" of decoding plugin "typical"' \
  'decoding: {strategy: typical, options: {typical_p: 1.5}}' --plugin-path "$PLUGINS"
refused "typical_p 0" 'typical_p must be in (0, 1]' \
  'decoding: {strategy: typical, options: {typical_p: 0}}' --plugin-path "$PLUGINS"
refused "misspelt option" 'did you mean "typical_p"?' \
  'decoding: {strategy: typical, options: {typical: 0.5}}' --plugin-path "$PLUGINS"
refused "plugin not on the path" 'no decoding plugin named "typical" is loaded' \
  'decoding: {strategy: typical}'
