#!/usr/bin/env bash
# Copies the demo/fixture training text into .cache/corpus/ (git-ignored), from two Debian packages:
#   fortunes               -> /usr/share/games/fortunes/*      (entries separated by lines holding only "%")
#   libpython3.11-stdlib / -minimal -> /usr/lib/python3.11/*.py (standard library source, files <= 32 kB)
# Overstrike sequences ("X<backspace>") and other control characters are removed from the fortunes.
# Usage: scripts/gather-corpus.sh [OUT_DIR]   (default .cache/corpus, relative to the repo root)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/.cache/corpus}"
fortunes_dir="${FORTUNES_DIR:-/usr/share/games/fortunes}"
python_dir="${PYTHON_STDLIB_DIR:-/usr/lib/python3.11}"
[[ -d "$fortunes_dir" ]] || { echo "missing $fortunes_dir: apt-get install fortunes" >&2; exit 1; }
[[ -d "$python_dir" ]] || { echo "missing $python_dir: apt-get install libpython3.11-stdlib" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/fortunes" "$out/python"
python3 - "$fortunes_dir" "$python_dir" "$out" <<'PY'
import os, re, sys
fortunes_dir, python_dir, out = sys.argv[1:4]
overstrike = re.compile(r".\x08")
control = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
n_entries = 0
for name in sorted(os.listdir(fortunes_dir)):
    path = os.path.join(fortunes_dir, name)
    if name.endswith((".dat", ".u8")) or os.path.islink(path) or not os.path.isfile(path):
        continue
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    text = control.sub("", overstrike.sub("", text))
    entries = []
    for entry in re.split(r"(?m)^%[ \t]*\n", text + "\n"):
        entry = entry.strip("\n")
        if entry.strip():
            entries.append(entry.rstrip())
    n_entries += len(entries)
    with open(os.path.join(out, "fortunes", name + ".txt"), "w", encoding="utf-8") as f:
        f.write("\n%\n".join(entries) + "\n")
n_py = 0
for name in sorted(os.listdir(python_dir)):
    path = os.path.join(python_dir, name)
    if not name.endswith(".py") or not os.path.isfile(path) or os.path.getsize(path) > 32000:
        continue
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace").replace("\r\n", "\n")
    with open(os.path.join(out, "python", name), "w", encoding="utf-8") as f:
        f.write(text)
    n_py += 1
print(f"corpus: {n_entries} fortunes, {n_py} python files -> {out}")
PY
du -sh "$out"
