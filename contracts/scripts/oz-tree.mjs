#!/usr/bin/env node
// An independent cross-check of Tributary's settlement trees with OpenZeppelin's own
// @openzeppelin/merkle-tree (StandardMerkleTree, leaf types ["address","uint256"]).
//
// Reads one JSON object on stdin:
//   {"values": [["0xAddress", "decimal amount"], ...],      leaves to build a tree from
//    "dump": {standard-v1 dump},                              optional: a tree to load and validate
//    "check": [{"value": ["0x..", "amount"], "proof": ["0x..", ...]}, ...],   optional
//    "want_proofs": true}                                     optional: the proof of every value
// Prints one JSON line:
//   {"root": "0x..", "dump_root": "0x.." | null, "valid": [bool, ...], "proofs": [["0x..", ...], ...]}
// root is StandardMerkleTree.of(values).root (null when values is empty or absent); dump_root is the
// root of StandardMerkleTree.load(dump) after tree.validate(), which throws on any inconsistent node;
// valid[i] is StandardMerkleTree.verify(root, ..., check[i].value, check[i].proof), against dump_root
// when there are no values; proofs[i] is the OpenZeppelin proof of values[i] (only with want_proofs,
// so large runs stay fast). Any error goes to stderr with exit status 1.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

const ENCODING = ["address", "uint256"];
// The ABI encoder builds (and throws away) error objects while it tries each value shape; their stack
// traces were a quarter of the time on 10^5 leaves. Only error messages are ever printed here.
Error.stackTraceLimit = 0;

function main() {
  const request = JSON.parse(readFileSync(0, "utf8"));
  if (request === null || typeof request !== "object") throw new Error("stdin must hold a JSON object");

  const values = request.values ?? [];
  if (!Array.isArray(values)) throw new Error("values must be an array of [address, amount] pairs");
  const tree = values.length > 0 ? StandardMerkleTree.of(values, ENCODING) : null;
  const root = tree ? tree.root : null;

  let dumpRoot = null;
  if (request.dump !== undefined && request.dump !== null) {
    const loaded = StandardMerkleTree.load(request.dump);
    if (typeof loaded.validate === "function") loaded.validate();
    dumpRoot = loaded.root;
  }

  const checks = request.check ?? [];
  if (!Array.isArray(checks)) throw new Error("check must be an array of {value, proof}");
  const against = root ?? dumpRoot;
  if (checks.length > 0 && against === null) throw new Error("check needs values or a dump to verify against");
  const valid = checks.map((entry, i) => {
    if (!entry || !Array.isArray(entry.value) || !Array.isArray(entry.proof)) {
      throw new Error(`check[${i}] must be {"value": [address, amount], "proof": [hex, ...]}`);
    }
    try {
      return StandardMerkleTree.verify(against, ENCODING, entry.value, entry.proof);
    } catch {
      return false; // a malformed proof element or value proves nothing
    }
  });

  const proofs = request.want_proofs === true && tree ? values.map((_, i) => tree.getProof(i)) : [];

  process.stdout.write(`${JSON.stringify({ root, dump_root: dumpRoot, valid, proofs })}\n`);
}

try {
  main();
} catch (error) {
  process.stderr.write(`oz-tree: ${error.message}\n`);
  process.exit(1);
}
