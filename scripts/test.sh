#!/usr/bin/env bash
# Runs every sealfs test, after installing whatever is missing. CI calls exactly this.
# One vitest run of all three tiers (vitest.config.ts, test/tiers.ts: unit, mount,
# integration); its global setup compiles the TypeScript once and fails the run on any error.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" || status=$?
# One plain closing line that any CI reader understands, for all tiers together.
node -e '
  const fs = require("fs");
  const text = fs.existsSync(process.argv[1]) ? fs.readFileSync(process.argv[1], "utf8") : "";
  if (!text) {
    console.log("tests: 0 passed, 0 failed, 0 skipped (no test ran: the build or the test setup failed, see above)");
    process.exit(0);
  }
  const r = JSON.parse(text);
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || true
exit $status
