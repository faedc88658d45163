#!/usr/bin/env bash
# What docker and systemd cannot show in CI, checked statically against the docs and
# the build:
#  - deploy/Dockerfile's build stage runs exactly the commands docs/deployment.md
#    shows under "Build and install" (no more, no fewer, same order), on debian:12;
#  - on Debian 12 (the image's base), the runtime stage's packages provide every
#    shared library that bin/banyan and each plugin load (ldd + dpkg -S + apt-cache);
#  - deploy/banyan.yaml passes `banyan config check`; the unit's ExecStart uses the
#    documented prefix and config path; `systemd-analyze verify` finds no problem in
#    the unit where systemd is present;
#  - deploy/nginx.conf proxies to the port deploy/banyan.yaml listens on, with
#    proxy_buffering off for streams.
#   deploy_test.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
SRC=$(realpath "$1")
BUILD=$(realpath "$2")
cd "$SRC"
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

# --- Dockerfile build stage == the documented commands ----------------------------
# RUN lines of the first stage (continuations joined), and the sh block after the
# "## Build and install" heading of docs/deployment.md.
docker_cmds=$(awk '/^FROM /{n++} n==1' deploy/Dockerfile | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' |
  sed -n 's/^RUN[[:space:]]\+//p' | tr -s ' ')
doc_cmds=$(awk '/^## Build and install/{s=1} s && /^```sh/{b=1; next} b && /^```/{exit} b' docs/deployment.md |
  grep -v '^#' | tr -s ' ')
if [[ -n $docker_cmds && $docker_cmds == "$doc_cmds" ]]; then
  ok "Dockerfile build stage runs the documented commands ($(wc -l <<<"$docker_cmds") commands)"
else
  bad "Dockerfile and docs/deployment.md differ:"; diff <(echo "$doc_cmds") <(echo "$docker_cmds")
fi
grep -q '^FROM debian:12 AS build' deploy/Dockerfile && grep -q '^FROM debian:12-slim' deploy/Dockerfile &&
  ok "Dockerfile stages are Debian 12" || bad "Dockerfile is not based on debian:12"
grep -q 'scripts/install-deps.sh' <<<"$docker_cmds" || bad "the Dockerfile does not use scripts/install-deps.sh"

# --- runtime libraries --------------------------------------------------------------
cache=$BUILD/CMakeCache.txt
if grep -q -e '^BANYAN_CUDA:BOOL=ON' -e '^BANYAN_SANITIZE:BOOL=ON' "$cache" 2>/dev/null; then
  echo "skip runtime libraries: this build has CUDA or sanitizers; the image is a plain CPU build"
elif grep -q '^12' /etc/debian_version 2>/dev/null && command -v apt-cache >/dev/null; then
  pkgs=$(awk '/^FROM /{n++} n==2' deploy/Dockerfile | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' |
    grep -o 'apt-get install [^&]*' | tr ' ' '\n' | grep -v -e '^-' -e '^apt-get$' -e '^install$' -e '^$')
  have=$( (echo "$pkgs"; apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances $pkgs 2>/dev/null | grep -v '^ ' | tr -d '<>';
      dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' 2>/dev/null |
        awk '$2 == "yes" || $3 == "required" {print $1}') | sed 's/:.*//' | sort -u)
  missing=""
  libs=$(for bin in "$BUILD"/bin/banyan $(find "$BUILD"/lib/banyan/plugins -name '*.so'); do
           ldd "$bin" | awk '$3 ~ /^\// {print $3}'
         done | sort -u)
  for lib in $libs; do
    owner=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1)
    [[ -z $owner ]] && owner=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1)
    [[ -z $owner ]] && { missing+=" $lib(no package)"; continue; }
    grep -qx "$owner" <<<"$have" || missing+=" $lib($owner)"
  done
  if [[ -z $missing ]]; then ok "the runtime image's packages provide every library banyan and its plugins load"
  else bad "libraries the runtime image lacks:$(tr ' ' '\n' <<<"$missing" | sort -u | tr '\n' ' ')"; fi
else
  echo "skip runtime libraries: not Debian 12, the image's base"
fi

# --- deployment file and systemd unit -------------------------------------------------
if out=$("$BUILD/bin/banyan" config check deploy/banyan.yaml 2>&1); then ok "deploy/banyan.yaml: $out"
else bad "deploy/banyan.yaml: $out"; fi
exec_start=$(sed -n 's/^ExecStart=//p' deploy/banyan.service)
[[ $exec_start == "/opt/banyan/bin/banyan serve --config /etc/banyan/banyan.yaml" ]] &&
  grep -qF 'cmake --install build --prefix /opt/banyan' docs/deployment.md &&
  grep -qF 'deploy/banyan.yaml /etc/banyan/banyan.yaml' docs/deployment.md &&
  ok "the unit starts the documented binary with the documented config" ||
  bad "ExecStart ($exec_start) does not match docs/deployment.md"
if command -v systemd-analyze >/dev/null; then
  unit=$(mktemp -d)/banyan.service
  sed "s|^ExecStart=/opt/banyan/bin/banyan|ExecStart=$BUILD/bin/banyan|" deploy/banyan.service >"$unit"
  out=$(systemd-analyze verify "$unit" 2>&1 | grep -v -e 'Failed to connect to bus' -e '^$')
  rm -rf "$(dirname "$unit")"
  [[ -z $out ]] && ok "systemd-analyze verify: no problem in deploy/banyan.service" ||
    bad "systemd-analyze verify: $out"
else
  echo "skip systemd-analyze: not installed"
fi

# --- nginx --------------------------------------------------------------------------
port=$(sed -n 's/^  port: *\([0-9]*\).*/\1/p' deploy/banyan.yaml)
grep -q "server 127.0.0.1:$port;" deploy/nginx.conf && grep -q 'proxy_buffering off;' deploy/nginx.conf &&
  grep -q 'proxy_http_version 1.1;' deploy/nginx.conf &&
  ok "nginx.conf proxies to 127.0.0.1:$port with proxy_buffering off" ||
  bad "deploy/nginx.conf does not proxy to server.port $port without buffering"
exit $fail
