#!/usr/bin/env bash
# Installs the build into a temporary prefix and checks that the installed binary
# runs and lists the same plugins as the build tree, from the installed paths.
set -euo pipefail
CMAKE=$1
BUILD=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
"$CMAKE" --install "$BUILD" --prefix "$prefix" >/dev/null
"$prefix/bin/banyan" version
built=$("$BUILD/bin/banyan" plugins list --json | python3 -c 'import json,sys; print(sorted((p["kind"],p["name"]) for p in json.load(sys.stdin)))')
installed_json=$("$prefix/bin/banyan" plugins list --json)
installed=$(python3 -c 'import json,sys; print(sorted((p["kind"],p["name"]) for p in json.load(sys.stdin)))' <<<"$installed_json")
if [[ "$built" != "$installed" ]]; then
  echo "FAIL: installed plugins $installed differ from the build tree's $built"; exit 1
fi
printf '%s' "$installed_json" >"$prefix/plugins.json"
python3 -c '
import json, sys
prefix = sys.argv[1]
arr = json.load(open(prefix + "/plugins.json"))
for p in arr:
    assert p["path"].startswith(prefix), p
' "$prefix"
echo "ok   install ($installed)"
