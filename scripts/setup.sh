#!/usr/bin/env bash
# Installs what sealfs needs on a Debian 12 / Node 20 machine: the Debian packages (when run
# as root and any is missing) and the npm dependencies, then builds. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# libfuse3-dev: the FUSE addon builds against it; fuse3: fusermount3; pkg-config: finds libfuse3;
# openssl: the benchmark reference; rclone, gocryptfs, syncthing, fio: real counterparts for
# tests and benchmarks; gdb, strace: tests read a mount server's process flags and what its
# launcher sends it; tmux: the prompt tests type at a real terminal.
packages=(openssl libfuse3-dev fuse3 pkg-config rclone gocryptfs syncthing fio psmisc gdb strace tmux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "sealfs setup: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "sealfs setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci also builds (native addon + TypeScript) through the "prepare" lifecycle script.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm run -s build
fi
