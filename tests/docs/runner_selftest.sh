#!/usr/bin/env bash
# The docs runner on small files: marked blocks run in order from a scratch checkout
# with build/bin on PATH; a failing command fails; an unmarked shell block, or a test
# mark before a non-shell block, is refused.
#   runner_selftest.sh PYTHON RUNNER SOURCE_DIR BUILD_DIR
set -uo pipefail
PY=$1 RUNNER=$2 SRC=$3 BUILD=$4
data=tests/docs/testdata
fail=0
expect() {  # expect NAME WANT_EXIT REGEX FILE
  local out rc
  out=$("$PY" "$RUNNER" --source "$SRC" --build "$BUILD" "$4" 2>&1)
  rc=$?
  if [[ $rc -ne $2 ]] || ! grep -Eq -- "$3" <<<"$out"; then
    echo "FAIL $1: exit $rc (wanted $2), output:"; echo "$out"; fail=1
  else
    echo "ok   $1"
  fi
}
if [[ -f $SRC/models/demo/config.json ]]; then
  expect "marked blocks run, files carry over, errors match" 0 "good.md: 3 blocks" $data/good.md
  expect "an error message other than the quoted one fails" 1 "missing:" $data/wrong_error.md
  expect "a failing command fails the file" 1 "failing.md:2 exited 1" $data/failing.md
fi
expect "an unmarked shell block is refused" 1 "needs <!-- test -->" $data/unmarked.md
expect "a test mark needs a shell block" 1 "must be followed by a \`\`\`sh block" $data/bad_mark.md
listing=$("$PY" "$RUNNER" --source "$SRC" --build "$BUILD" --list $data/good.md)
if grep -q "echo made" <<<"$listing" && grep -q -- "--- expects" <<<"$listing"; then echo "ok   --list"
else echo "FAIL --list: $listing"; fail=1; fi
exit $fail
