/* Run chapters' cells under Node with the site's own Pyodide (tests/test_runcells.py).
 *
 *   node tests/runcells_node.js <site>/_pyodide < pages.json > results.jsonl
 *
 * stdin: [{"page": name, "cells": [code, ...]}, ...]; each page gets a fresh Python.
 * stdout: one JSON line per page: {"page", "outputs": [[[kind, text], ...] per cell],
 * "seconds", "times": [seconds per cell]}. The Python starts through boot.js, as in the browser's worker.
 */
"use strict";
const fs = require("fs");
const path = require("path");

async function main() {
  const dir = path.resolve(process.argv[2]);
  const { loadPyodide } = require(path.join(dir, "pyodide.js"));
  const bootPython = require(path.join(dir, "boot.js"));
  const files = async (name) => new Uint8Array(fs.readFileSync(path.join(dir, name)));
  const pages = JSON.parse(fs.readFileSync(0, "utf-8"));
  for (const { page, cells } of pages) {
    const start = Date.now();
    const { run } = await bootPython(loadPyodide, dir + path.sep, files);
    const outputs = [];
    const times = [];
    for (const code of cells) {
      const output = [];
      const begin = Date.now();
      if (code !== null) await run(code, (kind, text) => output.push([kind, text]));
      outputs.push(output);
      times.push((Date.now() - begin) / 1000);
    }
    const seconds = (Date.now() - start) / 1000;
    process.stdout.write(JSON.stringify({ page, outputs, seconds, times }) + "\n");
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
