#!/usr/bin/env bash
# Installs what is needed, builds Banyan, and serves the demo deployment
# (configs/demo.yaml: the small demo model with its adapters) on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
exec build/bin/banyan serve --config configs/demo.yaml "$@"
