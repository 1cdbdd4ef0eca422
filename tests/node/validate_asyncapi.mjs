// Validates AsyncAPI documents with the official parser: zero errors and zero warnings.
// Usage: node validate_asyncapi.mjs <file.json | http(s)://url> ...
// Also proves the check can fail (a deliberately broken payload schema must be rejected) and
// checks what the parser does not: every {param} in an address has a parameter.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
const SEVERITY = ["error", "warning", "information", "hint"];
let failed = false;

async function load(source) {
  if (/^https?:/.test(source)) return (await fetch(source)).text();
  return readFile(source, "utf8");
}

async function diagnose(text) {
  const diagnostics = await parser.validate(text);
  return diagnostics.map((d) => ({ severity: SEVERITY[d.severity] ?? d.severity, code: d.code, path: d.path.join("/"), message: d.message }));
}

function paramsOf(document) {
  const missing = [];
  for (const [id, channel] of Object.entries(document.channels ?? {})) {
    for (const [, name] of channel.address.matchAll(/\{([^}]+)\}/g)) {
      if (!channel.parameters?.[name]) missing.push(`channel ${id}: {${name}} has no parameter`);
    }
  }
  return missing;
}

const sources = process.argv.slice(2);
if (sources.length === 0) {
  console.error("usage: node validate_asyncapi.mjs <file.json | url> ...");
  process.exit(2);
}
const texts = [];
for (const source of sources) {
  const text = await load(source);
  texts.push(text);
  const problems = (await diagnose(text)).filter((d) => d.severity === "error" || d.severity === "warning");
  problems.push(...paramsOf(JSON.parse(text)).map((message) => ({ severity: "error", code: "param", path: "", message })));
  if (problems.length > 0) {
    failed = true;
    console.error(`${source}: ${problems.length} problem(s)`);
    for (const p of problems) console.error(`  ${p.severity} ${p.code} at ${p.path}: ${p.message}`);
  } else {
    console.log(`${source}: valid, 0 errors, 0 warnings`);
  }
}

// The check must be able to fail: break one payload schema and expect the parser to object.
const broken = JSON.parse(texts[0]);
const [schema] = Object.keys(broken.components.schemas);
broken.components.schemas[schema].type = "objekt";
const brokenErrors = (await diagnose(JSON.stringify(broken))).filter((d) => d.severity === "error");
if (brokenErrors.length === 0) {
  failed = true;
  console.error(`a broken payload schema (${schema}.type = "objekt") was accepted: the check cannot fail`);
} else {
  console.log(`broken payload schema rejected (${brokenErrors.length} error(s)): ${brokenErrors[0].message}`);
}
// And a {param} without its parameter must be caught by our own check.
const unparameterized = JSON.parse(texts[0]);
const [first] = Object.values(unparameterized.channels);
first.address += "/{extra}";
if (paramsOf(unparameterized).length === 0) {
  failed = true;
  console.error("an address {param} without a parameter was not caught");
}

process.exit(failed ? 1 : 0);
