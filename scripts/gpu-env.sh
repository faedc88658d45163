# Sourced (from the repository root) by the scripts/gpu-*.sh before they configure:
# the GPU machine lacks PCRE2's headers, which the top-level configure needs. They
# travel as Debian packages in .deps (carry it; here: `apt-get download libpcre2-dev
# libpcre2-8-0` into .deps) and are unpacked under .deps/root, with pkg-config and
# the loader pointed at them.
if ! pkg-config --exists libpcre2-8 2>/dev/null && ls .deps/*.deb >/dev/null 2>&1; then
  mkdir -p .deps/root
  for deb in .deps/*.deb; do dpkg -x "$deb" .deps/root; done
  pc=$(find .deps/root -name libpcre2-8.pc | head -n1)
  if [[ -n $pc ]]; then
    sed -i "s|^prefix=.*|prefix=$PWD/.deps/root/usr|" "$pc"
    export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export LD_LIBRARY_PATH="$(dirname "$(dirname "$pc")")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
