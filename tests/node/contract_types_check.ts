// Checks a module generated from examples/contract_types.rs: it compiles strict (types used
// below must exist and narrow), and its validator accepts real serde_json output and rejects
// near misses. Run by the Rust test `typescript_handles_every_serde_shape`:
//   node contract_types_check.js samples.json
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import {
  deleteChannel,
  error,
  schemaOf,
  validate,
  validateChannel,
  type ErrorMessage,
  type Internal,
  type Odd,
  type Page,
  type Page2,
} from "./contract_types.js";

// Type level: tags narrow (the newtype variant keeps its tag), two instantiations of one
// generic stay distinct, a flattened map sits beside named fields.
export function describe(kind: Internal): string {
  switch (kind.type) {
    case "unit":
      return "unit";
    case "struct":
      return `${kind.x}`;
    case "wrapped":
      return `${kind.a}`;
  }
}
export const pages: [Page, Page2] = [{ items: [{ name: "ann" }] }, { items: [{ total: 5 }] }];
export const odd: Odd = { int_map: { "1": "one" }, ordered: {}, constructor: "c", letter: "x", pair: [1, 2], weight: 1.5 };
export const failure: ErrorMessage = { code: 3 };
export const channels = [deleteChannel.address, validateChannel.address, error.address];

// Runtime: every real serde_json sample is valid.
const samples = JSON.parse(readFileSync(process.argv[2] ?? "", "utf8")) as Record<string, unknown[]>;
for (const [name, values] of Object.entries(samples)) {
  for (const value of values) {
    assert.equal(validate(schemaOf(name), value, name), null, `${name}: ${JSON.stringify(value)}`);
  }
}
// And near misses are not.
const goodOdd = samples.Odd?.[0] as Record<string, unknown>;
const misses: Array<[string, unknown]> = [
  ["Odd", { ...goodOdd, letter: "ab" }],
  ["Odd", { ...goodOdd, pair: [1] }],
  ["Odd", { ...goodOdd, int_map: { "1": 5 } }],
  ["Odd", Object.fromEntries(Object.entries(goodOdd).filter(([key]) => key !== "constructor"))],
  ["Page2", { items: [{ name: "not an order" }] }],
  ["OrderQuery", { kind: { type: "wrapped" } }],
  ["Array_of_User", [{ name: 1 }]],
  ["Event", { right: 1 }],
];
for (const [name, value] of misses) {
  assert.notEqual(validate(schemaOf(name), value, name), null, `${name} accepted ${JSON.stringify(value)}`);
}
// Undefined properties are not sent, so they are not checked.
assert.equal(validate(schemaOf("Odd"), { ...goodOdd, maybe: undefined }, "Odd"), null);
console.log("contract types: all checks passed");
