#!/usr/bin/env bash
# The main job: installs what is missing, then runs the demo (scripts/demo.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
exec node scripts/demo.mjs "$@"
