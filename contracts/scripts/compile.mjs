#!/usr/bin/env node
// Compiles the settlement contracts with solc-js (the official compiler, from npm) through standard
// JSON, and writes one artifact per contract to artifacts/:
//   {"contractName", "abi", "bytecode", "deployedBytecode", "compiler", "settings"}
// The metadata hash is left out of the bytecode (bytecodeHash "none"), so the same sources and
// compiler always give the same bytes.
//   node scripts/compile.mjs           write the artifacts
//   node scripts/compile.mjs --check   recompile and exit 1 if the committed artifacts differ
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const CONTRACTS = [
  { name: "CumulativeDistributor", source: "src/CumulativeDistributor.sol" },
  { name: "TestToken", source: "src/TestToken.sol" },
];
// Keep in step with foundry.toml, so forge tests the same bytecode.
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "none" },
};

const check = process.argv.includes("--check");
const unknown = process.argv.slice(2).filter((arg) => arg !== "--check");
if (unknown.length > 0) {
  console.error(`usage: node scripts/compile.mjs [--check] (unknown: ${unknown.join(" ")})`);
  process.exit(2);
}

const sources = {};
for (const { source } of CONTRACTS) {
  sources[source] = { content: readFileSync(join(root, source), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    ...SETTINGS,
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const output = JSON.parse(
  solc.compile(JSON.stringify(input), {
    import: (path) => ({ error: `imports are not used by these contracts: ${path}` }),
  }),
);

// Any error, and any warning, fails the build: the contracts are meant to compile clean.
const problems = output.errors ?? [];
for (const problem of problems) {
  console.error(problem.formattedMessage ?? problem.message);
}
if (problems.length > 0) {
  console.error(`compile: ${problems.length} compiler error(s) or warning(s); nothing written`);
  process.exit(1);
}

const compiler = solc.version();
const mismatched = [];
for (const { name, source } of CONTRACTS) {
  const compiled = output.contracts?.[source]?.[name];
  if (!compiled) {
    console.error(`compile: ${name} not found in ${source}`);
    process.exit(1);
  }
  const artifact = {
    contractName: name,
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
    deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
    compiler,
    settings: SETTINGS,
  };
  const text = `${JSON.stringify(artifact, null, 2)}\n`;
  const path = join(root, "artifacts", `${name}.json`);
  if (check) {
    const committed = existsSync(path) ? readFileSync(path, "utf8") : null;
    if (committed !== text) {
      mismatched.push(`artifacts/${name}.json ${committed === null ? "is missing" : "differs from a fresh compile"}`);
    }
  } else {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    console.log(`wrote artifacts/${name}.json (${(compiled.evm.deployedBytecode.object.length / 2) | 0} bytes deployed)`);
  }
}

if (check) {
  if (mismatched.length > 0) {
    for (const line of mismatched) console.error(`check: ${line}`);
    console.error("check: the committed artifacts are stale; run `npm run compile --prefix contracts` and commit them");
    process.exit(1);
  }
  console.log(`check: artifacts match a fresh compile with solc ${compiler}`);
}
