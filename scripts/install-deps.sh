#!/usr/bin/env bash
# Installs the Debian 12 / Ubuntu 24.04 packages Banyan builds and tests with.
# Idempotent: packages already present are skipped by apt.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost-dev libboost-filesystem-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev
  libopenblas-dev libpcre2-dev
  curl jq python3
  fortunes bible-kjv-text
)
missing=()
# node/npm may come from elsewhere (nodesource); only ask Debian for them when absent.
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
