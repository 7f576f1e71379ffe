#!/usr/bin/env node
// A `solc` command line for forge, backed by solc-js (the official compiler built to WebAssembly,
// from npm), because no native solc can be downloaded here. foundry.toml names this file as its
// compiler. forge runs it two ways, and those are the two this wrapper answers:
//   solc --version                     -> the version banner native solc prints
//   solc [paths options] --standard-json  -> standard JSON in on stdin, standard JSON out on stdout
// Sources that the input names by path instead of content are read from the base path, the include
// paths or the working directory, in that order.
import { readFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { isAbsolute, resolve } from "node:path";

const require = createRequire(import.meta.url);
const solc = require("solc");

const args = process.argv.slice(2);

function optionValues(name) {
  const values = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name && i + 1 < args.length) values.push(args[++i]);
    else if (args[i].startsWith(`${name}=`)) values.push(args[i].slice(name.length + 1));
  }
  return values;
}

if (args.includes("--version") || args.includes("-v")) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}

if (!args.includes("--standard-json")) {
  process.stderr.write(
    `scripts/solc.mjs only supports --version and --standard-json (got: ${args.join(" ")})\n`,
  );
  process.exit(2);
}

const roots = [...optionValues("--base-path"), ...optionValues("--include-path"), process.cwd()];

function findImports(path) {
  const candidates = isAbsolute(path) ? [path] : roots.map((root) => resolve(root, path));
  for (const candidate of candidates) {
    if (existsSync(candidate)) {
      try {
        return { contents: readFileSync(candidate, "utf8") };
      } catch (error) {
        return { error: `cannot read ${candidate}: ${error.message}` };
      }
    }
  }
  return { error: `file not found: ${path} (looked in ${roots.join(", ")})` };
}

const input = readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
process.stdout.write("\n");
