#!/usr/bin/env bash
# Installs Banyan into a temporary prefix, builds examples/gpt2 against it with
# find_package(Banyan) alone, and runs the GPT-2 transformers parity test with the
# example plugin on the plugin path (it must run, not skip).
set -euo pipefail
CMAKE=$1
BUILD=$2
SRC=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$CMAKE" --install "$BUILD" --prefix "$work/prefix" >/dev/null
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
"$CMAKE" -S "$SRC/examples/gpt2" -B "$work/gpt2" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
"$CMAKE" --build "$work/gpt2" -j2 >/dev/null
test -f "$work/gpt2/plugins/model/gpt2/plugin.yaml"
# The installed binary lists the plugin from --plugin-path.
"$work/prefix/bin/banyan" plugins list --json --plugin-path "$work/gpt2/plugins" | grep -q '"name": "gpt2"'
out=$(BANYAN_TEST_PLUGIN_PATH="$work/gpt2/plugins" "$BUILD/bin/banyan_runtime_tests" \
        --gtest_filter='*Parity*gpt2*' 2>&1) || { echo "$out"; exit 1; }
if grep -q SKIPPED <<<"$out" || ! grep -q "\[  PASSED  \] 1 test" <<<"$out"; then
  echo "$out"; echo "FAIL: the GPT-2 parity test did not run and pass"; exit 1
fi
echo "ok   GPT-2 out-of-tree plugin: greedy tokens and logprobs match transformers"

# PEFT adapters on it (Conv1D weights, fan_in_fan_out) match peft, mixed with the others.
out=$(BANYAN_TEST_PLUGIN_PATH="$work/gpt2/plugins" "$BUILD/bin/banyan_adapters_tests" \
        --gtest_filter='LoraEngine.EveryAdapterMatchesPeftAllMixedInOneRun' 2>&1) || { echo "$out"; exit 1; }
if ! grep -q "PEFT.*gpt2" <<<"$out" || grep -q "SKIPPED" <<<"$out"; then
  echo "$out"; echo "FAIL: the GPT-2 adapter parity test did not run and pass"; exit 1
fi
echo "ok   GPT-2 fan_in_fan_out LoRA matches peft"
