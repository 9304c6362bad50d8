#!/usr/bin/env bash
# Installs what building sealfs needs on a Debian 12 machine: checks Node, installs the Debian
# packages (when run as root and any is missing) and the npm dependencies, then builds. With
# --tests also the tools the tests and benchmarks run against (scripts/test.sh and
# scripts/demo.sh pass it); a user who only installs sealfs never gets those. Safe to run again.
#
# Usage: bash scripts/setup.sh [--tests]
set -euo pipefail
cd "$(dirname "$0")/.."

tests=false
for arg in "$@"; do
  case "$arg" in
    --tests) tests=true ;;
    *) echo "sealfs setup: unknown option $arg (usage: bash scripts/setup.sh [--tests])" >&2; exit 2 ;;
  esac
done

# Node first: everything below needs it, and Debian 12's own nodejs (18) is too old. The
# minimum is package.json's "engines" (one place).
need=$(sed -n 's/.*"node": *">=\([0-9.]*\)".*/\1/p' package.json)
how="get Node 20 or 22 from NodeSource's Debian repository or the official tarball from nodejs.org in /usr/local (README.md, \"Install\")"
if ! have=$(node -p process.versions.node 2>/dev/null); then
  echo "sealfs setup: node is not installed; sealfs needs Node >= $need: $how" >&2
  exit 1
fi
if ! node -e '
  const [have, need] = process.argv.slice(1).map((v) => v.split(".").map(Number));
  for (let i = 0; i < 3; i++) if ((have[i] ?? 0) !== (need[i] ?? 0)) process.exit((have[i] ?? 0) > (need[i] ?? 0) ? 0 : 1);
' "$have" "$need"; then
  echo "sealfs setup: Node $have is too old; sealfs needs Node >= $need (Debian 12's own nodejs is 18): $how" >&2
  exit 1
fi

# To build: libfuse3-dev (the FUSE addon builds against it), pkg-config (finds it), and what
# node-gyp runs (python3, make, g++); to run: fuse3 (fusermount3, how an ordinary user mounts).
packages=(libfuse3-dev fuse3 pkg-config python3 make g++)
# For the tests and benchmarks: openssl (the benchmark reference); rclone, gocryptfs,
# syncthing, fio (real counterparts); psmisc (fuser); gdb, strace (tests read a mount
# server's process flags and what its launcher sends it); acl (setfacl: the install test
# gives or denies its unprivileged user /dev/fuse without changing the device's mode);
# man-db, groff-base (a test renders the man page); zsh (a test loads the zsh completion);
# systemd (systemd-analyze, systemd-escape), libsecret-tools (secret-tool), gnome-keyring,
# dbus-daemon (dbus-run-session): tests check autostart units and run them against a real
# Secret Service; tmux (the prompt tests type at a real terminal); gcc (cc builds the
# conformance suites vendored in third_party/, whose scripts also call openssl).
if $tests; then packages+=(openssl rclone gocryptfs syncthing fio psmisc gdb strace acl man-db groff-base zsh systemd libsecret-tools gnome-keyring dbus-daemon tmux gcc); fi
# attr (setfattr, getfattr) and rsync: the extended-attribute tests set, dump and copy them.
if $tests; then packages+=(attr rsync); fi
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

# npm ci also builds (native addon + TypeScript) through the "postprepare" lifecycle script
# (not "prepare": npm 11 warns about an installed package's prepare script, which never runs).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm run -s build
fi
