// Compiles the contracts with the pinned solc (npm, no download) into out/<Name>.json:
// { "contractName", "abi", "bytecode" }, the files the backend binds with alloy's sol!.
//
//   node compile.mjs           write out/
//   node compile.mjs --check   fail when out/ differs from a fresh compile
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = dirname(fileURLToPath(import.meta.url));
const sources = ["Settlement.sol", "test/TestWETH.sol", "test/TestNFT.sol"];
const input = {
  language: "Solidity",
  sources: Object.fromEntries(sources.map((file) => [file, { content: readFileSync(join(here, file), "utf8") }])),
  settings: {
    // Cancun: what mainnet and every major L2 run, so the bytecode deploys anywhere.
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((error) => error.severity === "error");
for (const message of output.errors ?? []) console.error(message.formattedMessage);
if (errors.length > 0) process.exit(1);

const check = process.argv.includes("--check");
let stale = 0;
mkdirSync(join(here, "out"), { recursive: true });
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [contractName, compiled] of Object.entries(contracts)) {
    if (compiled.evm.bytecode.object === "") continue; // an interface
    const artifact = JSON.stringify(
      { contractName, source: file, compiler: `solc ${solc.version()}`, abi: compiled.abi, bytecode: `0x${compiled.evm.bytecode.object}` },
      null,
      2,
    ) + "\n";
    const path = join(here, "out", `${contractName}.json`);
    if (check) {
      let committed = "";
      try { committed = readFileSync(path, "utf8"); } catch { /* missing */ }
      if (committed !== artifact) { console.error(`out/${contractName}.json differs from a fresh compile of ${file}`); stale += 1; }
    } else {
      writeFileSync(path, artifact);
      console.log(`out/${contractName}.json (${compiled.evm.bytecode.object.length / 2} bytes of bytecode)`);
    }
  }
}
if (stale > 0) process.exit(1);
